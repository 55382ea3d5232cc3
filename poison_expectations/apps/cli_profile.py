"""`poison-check fit` and `poison-check profile show`: reference profiles.

A profile is the fitted state of a trusted table (see core/profile.py);
`validate DATA --profile PROFILE` scores batches against it without refitting.
Exit codes as for `validate`: 0 done, 2 usage/input error (one line).
"""

from __future__ import annotations

from pathlib import Path

import click

from poison_expectations.apps.cli import _progress, _split_columns, data_role_options, guarded


@click.command("fit")
@click.argument("trusted", type=click.Path(dir_okay=False, path_type=Path))
@data_role_options
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Checkpoint config YAML.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="Write the profile here (one file).")
@click.option("--quiet", is_flag=True, help="No progress output on stderr.")
@guarded
def fit(trusted, label_column, id_column, source_column, features, config_path, out_path, quiet):
    """Fit every enabled family on TRUSTED (clean) data and store the profile."""
    from poison_expectations.apps.fit import describe, fit_job
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.core.errors import PoisonCheckError

    if Path(out_path).resolve() in {Path(trusted).resolve(), Path(config_path or trusted).resolve()}:
        raise PoisonCheckError(f"{out_path}: refusing to overwrite an input file")
    config = job_config(config_path, label_column=label_column, id_column=id_column,
                        source_column=source_column, feature_columns=_split_columns(features))
    profile = fit_job(trusted, config, out_path, progress=_progress(quiet))
    for line in describe(profile, out_path):
        click.echo(line)


@click.group("profile")
def profile():
    """Reference profiles: show what one holds."""


@profile.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@guarded
def show(path):
    """Print what the profile at PATH holds (and verify its checksums)."""
    from poison_expectations.apps.fit import describe
    from poison_expectations.stores.profiles import load_profile

    for line in describe(load_profile(path), path):
        click.echo(line)
