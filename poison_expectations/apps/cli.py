"""`poison-check`: validate a training table before retraining.

Exit codes: 0 passed; 1 poisoning expectations failed; 2 usage, input or
config error (one line on stderr, no traceback); 3 internal error;
130/143 interrupted by SIGINT/SIGTERM (no partial outputs are left).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

import click

from poison_expectations.core.errors import PoisonCheckError

EXIT_PASSED, EXIT_FAILED, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class Interrupted(BaseException):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _on_sigterm(signum, frame):
    raise Interrupted(143)


@contextlib.contextmanager
def signals_handled():
    """SIGINT raises KeyboardInterrupt and SIGTERM raises Interrupted(143)
    from the start of `main`, before any heavy import (the commands import
    pandas, scikit-learn and GX lazily), so a signal at any moment ends in
    exit 130/143 with one line, never a traceback or a silent death."""
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.SIG_IGN or previous_int is signal.SIG_DFL:
        # a shell starts background jobs with SIGINT ignored; an explicit
        # `kill -INT` must still stop the run cleanly (exit 130)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)


_PROGRAM = {"running": False}  # main() was called as the program (argv from the command line)


def _error(message: str, code: int) -> None:
    click.echo(f"poison-check: error: {one_line(message)}", err=True)
    if code in (130, 143) and _PROGRAM["running"]:
        # asked to stop: skip the interpreter's teardown of GX, pandas and scikit-learn
        # (seconds on a busy machine); outputs and the ledger are settled by now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def one_line(message: str) -> str:
    """Escape line breaks and other control characters: messages quote column
    names and values from the data, and the error must stay one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in message)


class OneLineErrorGroup(click.Group):
    """click's usage errors (bad option, missing argument) as one stderr line, like ours."""

    def main(self, args=None, *rest, **kwargs):
        kwargs["standalone_mode"] = False
        _PROGRAM["running"] = args is None  # the entry points; CliRunner and tests pass args
        try:
            with signals_handled():
                return super().main(args, *rest, **kwargs)
        except (click.exceptions.Abort, KeyboardInterrupt):  # Ctrl-C while click itself was parsing
            _error("interrupted", 130)
        except Interrupted as exc:
            _error("terminated", exc.code)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `poison-check`: the help text
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            hint = " (see --help)" if isinstance(exc, click.UsageError) else ""
            _error(exc.format_message() + hint, exc.exit_code)


def guarded(func):
    """Run a command body; map every failure to a one-line message and exit code."""
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                if not os.environ.get("POISON_CHECK_DEBUG"):
                    # library warnings (numpy overflow on extreme values, sklearn convergence)
                    # are noise on a CLI whose stderr carries one error line at most
                    warnings.simplefilter("ignore")
                return func(*args, **kwargs)
        except click.ClickException:
            raise
        except PoisonCheckError as exc:
            _error(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _error("interrupted", 130)
        except Interrupted as exc:
            _error("terminated", exc.code)
        except MemoryError:
            _error("out of memory: lower limits.max_rows or split the batch", EXIT_INPUT)
        except Exception as exc:  # noqa: BLE001 - the contract is: never a traceback
            if os.environ.get("POISON_CHECK_DEBUG"):
                traceback.print_exc()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _error(f"internal error: {type(exc).__name__}: {first[:300]}", EXIT_INTERNAL)
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="poison-expectations")
def main():
    """Detect poisoned training data with Great Expectations checkpoints."""


def _split_columns(value: str | None) -> list[str] | None:
    if value is None:
        return None
    columns = [c.strip() for c in value.split(",") if c.strip()]
    if not columns:
        raise click.BadParameter("expected a comma-separated list of column names", param_hint="--features")
    return columns


DATA_ROLE_OPTIONS = (
    click.option("--label", "label_column", help="Label column."),
    click.option("--id-column", help="Unique row id column (default: 0-based row_index)."),
    click.option("--source-column", help="Contributor / provenance column."),
    click.option("--features", help="Comma-separated feature columns (default: all others)."),
)


def data_role_options(command):
    """--label, --id-column, --source-column and --features, as every command that reads a table takes them."""
    for option in reversed(DATA_ROLE_OPTIONS):
        command = option(command)
    return command


SPARK_OPTIONS = (
    click.option("--engine", type=click.Choice(["pandas", "spark"]), default="pandas", show_default=True,
                 help="spark: score partitions on a Spark cluster (DATA: parquet file or folder, or CSV); "
                      "per-row families only, outputs are parquet datasets (see docs/spark.md)."),
    click.option("--spark-master", help="Spark master URL (default: the active session, else local[*])."),
    click.option("--spark-conf", multiple=True, metavar="KEY=VALUE", help="Spark configuration (repeatable)."),
)


def spark_options(command):
    for option in reversed(SPARK_OPTIONS):
        command = option(command)
    return command


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@data_role_options
@click.option("--reference", type=click.Path(dir_okay=False), help="Trusted reference table (CSV/Parquet).")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False),
              help="Stored reference profile (`poison-check fit`): score against it without refitting.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Checkpoint config YAML.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option("--findings", type=click.Path(),
              help="Write row-level findings (CSV/Parquet; a parquet dataset folder with --engine spark).")
@click.option("--accepted", type=click.Path(),
              help="Write the unflagged rows here, unchanged, in the input's format.")
@click.option("--quarantine", type=click.Path(),
              help="Write the flagged rows here, unchanged, plus poison_score and reasons.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML report.")
@click.option("--data-docs", "data_docs", type=click.Path(file_okay=False),
              help="Build GX Data Docs for this run in this folder.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="stdout format.")
@click.option("--quiet", is_flag=True, help="No progress output on stderr.")
@spark_options
@guarded
def validate(data, label_column, id_column, source_column, features, reference, profile_path, config_path,
             report, findings, accepted, quarantine, html_path, data_docs, output_format, quiet, engine,
             spark_master, spark_conf):
    """Validate DATA (CSV or Parquet) against the poisoning checkpoint."""
    from poison_expectations.apps.jobs import check_inputs, job_config, run_job

    flags = {"label_column": label_column, "id_column": id_column, "source_column": source_column,
             "feature_columns": _split_columns(features), "reference": reference}
    if engine == "spark":
        from poison_expectations.apps.spark_validate import validate_command

        sys.exit(validate_command(data, flags, profile_path, config_path,
                                  {"findings": findings, "report": report, "accepted": accepted,
                                   "quarantine": quarantine, "html": html_path, "data_docs": data_docs},
                                  master=spark_master, conf_pairs=spark_conf, output_format=output_format))
    check_inputs(data, flags)  # the paths and columns given here, before the config and GX are loaded
    config = job_config(config_path, **flags, profile=profile_path)
    outputs = {"findings": findings, "report": report, "accepted": accepted, "quarantine": quarantine,
               "html": html_path, "data_docs": data_docs}
    outcome, written = run_job(data, config, outputs, progress=_progress(quiet))
    from poison_expectations.apps.console import verdict_text

    if output_format == "json":
        click.echo(json.dumps(outcome.summary(), indent=2, default=str))
    else:
        click.echo(verdict_text(outcome))
        if outcome.analysis.encoder.dropped:
            click.echo(f"dropped empty feature columns (no value in any row): "
                       f"{', '.join(map(one_line, outcome.analysis.encoder.dropped))}")
        for name, path in written.items():
            if path is not None:
                click.echo(f"{name}: {path}")
    sys.exit(EXIT_PASSED if outcome.success else EXIT_FAILED)


def _progress(quiet: bool):
    """A progress bar on stderr, only for a person at a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from poison_expectations.core.progress import StepProgress

    return StepProgress(sys.stderr)


@main.command("run-checkpoint")
@click.argument("name")
@click.option("--project", "project_dir", type=click.Path(file_okay=False), default="checkpoints",
              show_default=True, help="GX file-context project root (the folder holding gx/).")
@click.option("--data", type=click.Path(dir_okay=False), required=True, help="Batch to validate (CSV/Parquet).")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False),
              help="Score against this stored profile instead of the suite's reference.")
@guarded
def run_checkpoint_command(name, project_dir, data, profile_path):
    """Run a stored GX checkpoint NAME (suite JSON with our expectations) on DATA."""
    from poison_expectations.apps.console import checkpoint_lines
    from poison_expectations.gx.project import run_stored_checkpoint

    written: list[dict] = []
    result = run_stored_checkpoint(project_dir, name, data, profile=profile_path, outputs=written)
    for line in checkpoint_lines(result):
        click.echo(line)
    click.echo(f"checkpoint {name}: {'PASSED' if result.success else 'FAILED'}")
    for action in written:  # where each output went (stored relative paths are inside the project)
        for output in ("accepted", "quarantine"):
            if action.get(output):
                click.echo(f"{output}: {action[output]}")
    sys.exit(EXIT_PASSED if result.success else EXIT_FAILED)


@main.command()
@click.argument("trusted", type=click.Path(dir_okay=False, path_type=Path))
@data_role_options
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config to start from.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="Write the calibrated config (YAML, every key explicit) here.")
@click.option("--batch-rows", type=click.IntRange(min=1),
              help="Smallest batch you will validate (default: the trusted table's rows).")
@click.option("--confidence", type=click.FloatRange(0.5, 1.0, min_open=True, max_open=True), default=0.999,
              show_default=True, help="Confidence of each statistical margin.")
@guarded
def calibrate(trusted, label_column, id_column, source_column, features, config_path, out_path, batch_rows,
              confidence):
    """Set each family's limits from TRUSTED (clean) data and write the config."""
    from poison_expectations.apps.calibrate import calibrate as run_calibration
    from poison_expectations.stores.io import check_writable, write_text_atomic
    from poison_expectations.apps.jobs import job_config

    if Path(out_path).resolve() in {Path(trusted).resolve(), Path(config_path or trusted).resolve()}:
        raise PoisonCheckError(f"{out_path}: refusing to overwrite an input file")
    try:  # a missing folder is created (as the Airflow operator does), before the slow run
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PoisonCheckError(f"{out_path}: cannot create its folder ({exc.strerror or exc})") from None
    check_writable(out_path)
    config = job_config(config_path, label_column=label_column, id_column=id_column,
                        source_column=source_column, feature_columns=_split_columns(features))
    calibration = run_calibration(trusted, config, batch_rows=batch_rows, confidence=confidence)
    write_text_atomic(out_path, calibration.yaml())
    click.echo(calibration.header().replace("# ", "").rstrip())
    click.echo(f"wrote {out_path}")


@main.command("init")
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--project", "project_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="GX project root (gx/ is created in it, or extended when it exists).")
@click.option("--name", default="poison_check", show_default=True,
              help="Checkpoint and suite name (the validation definition is NAME_validation).")
@data_role_options
@click.option("--reference", type=click.Path(dir_okay=False), help="Trusted reference table (stored absolute).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Checkpoint config YAML (e.g. from `poison-check calibrate`).")
@click.option("--accepted", help="Add a quarantine action writing accepted rows here ({run_name} allowed).")
@click.option("--quarantine", help="Add a quarantine action writing flagged rows here ({run_name} allowed).")
@click.option("--force", is_flag=True, help="Replace a suite/validation/checkpoint of the same name.")
@guarded
def init(data, project_dir, name, label_column, id_column, source_column, features, reference, config_path,
         accepted, quarantine, force):
    """Scaffold a GX project with our suite and a checkpoint for tables like DATA."""
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.apps.scaffold import ProjectNames, scaffold

    config = job_config(config_path, label_column=label_column, id_column=id_column,
                        source_column=source_column, feature_columns=_split_columns(features),
                        reference=reference)
    written = scaffold(project_dir, data, config, ProjectNames(checkpoint=name), accepted=accepted,
                       quarantine=quarantine, replace=force)
    click.echo(f"GX project {written['project']}: checkpoint '{name}', suite '{written['suite']}' "
               f"({len(written['expectations'])} expectations: {', '.join(written['expectations'])}), "
               f"validation definition '{written['validation_definition']}', dataframe asset {written['asset']}")
    click.echo("Run it with either:")
    click.echo(f"  poison-check run-checkpoint {name} --project {project_dir} --data {data}")
    reader = "read_parquet" if Path(data).suffix.lower() in (".parquet", ".pq") else "read_csv"
    click.echo(f"  python -c \"import great_expectations as gx, pandas as pd, poison_expectations; "
               f"ctx = gx.get_context(mode='file', project_root_dir='{project_dir}'); "
               f"print(ctx.checkpoints.get('{name}').run(batch_parameters={{'dataframe': pd.{reader}('{data}')}})"
               ".success)\"")


main.add_command(__import__(f"{__package__}.cli_reputation", fromlist=["reputation"]).reputation)
main.add_command(__import__(f"{__package__}.cli_profile", fromlist=["fit"]).fit)
main.add_command(__import__(f"{__package__}.cli_profile", fromlist=["profile"]).profile)

if __name__ == "__main__":  # pragma: no cover
    main()
