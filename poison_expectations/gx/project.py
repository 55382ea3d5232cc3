"""Stored GX projects: load a file context, make sure every stored poison
expectation really loaded, and run a checkpoint.

GX drops expectation types it does not know when it loads a suite, and the
checkpoint may then report success. So the loader imports the plugin first,
then compares each suite's stored JSON with what GX loaded, and refuses to
run (ConfigError, exit 2) when anything is missing.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from poison_expectations.core.errors import ConfigError, InputError
from poison_expectations.stores.io import read_table

SUITES_FOLDER = Path("gx") / "expectations"


def stored_expectation_types(project_dir: Path) -> dict[str, Counter]:
    """suite name -> Counter of expectation types, read from the raw JSON."""
    folder = Path(project_dir) / SUITES_FOLDER
    stored: dict[str, Counter] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read suite JSON ({exc})") from None
        stored[document.get("name", path.stem)] = Counter(e.get("type") for e in document.get("expectations", []))
    return stored


def load_context(project_dir: str | Path):
    """A file context whose suites are verified to contain every stored expectation."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import poison_expectations.gx.register  # noqa: F401  (registers our expectations before GX reads suites)

    project_dir = Path(project_dir)
    if not (project_dir / "gx" / "great_expectations.yml").is_file():
        raise ConfigError(f"{project_dir}: not a GX file-context project (no gx/great_expectations.yml)")
    gx_logger = logging.getLogger("great_expectations")
    level = gx_logger.level
    gx_logger.setLevel(logging.CRITICAL)  # GX logs a traceback per unknown expectation; we report it below
    try:
        context = gx.get_context(mode="file", project_root_dir=str(project_dir))
        # no tqdm bars on stderr (in memory only: the project's yml is not rewritten)
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        suites = {name: context.suites.get(name) for name in stored_expectation_types(project_dir)}
    finally:
        gx_logger.setLevel(level)
    for suite_name, expected in stored_expectation_types(project_dir).items():
        loaded = Counter(e.expectation_type for e in suites[suite_name].expectations)
        missing = expected - loaded
        if missing:
            kinds = ", ".join(sorted(missing))
            raise ConfigError(f"suite '{suite_name}': stored expectations were not loaded: {kinds} "
                              "(is the plugin that defines them installed?)")
    return context


def run_stored_checkpoint(project_dir: str | Path, checkpoint_name: str, data: str | Path,
                          profile: str | Path | None = None, outputs: list | None = None):
    """Run a stored checkpoint whose batch is a dataframe asset, on DATA;
    with `profile`, every poison expectation scores against that stored
    profile instead of its own reference (for this run; nothing is saved).

    Relative paths stored in its suites and actions resolve against
    `project_dir` (`paths.project_root`), and the files they name are
    checked before any work starts. `outputs`, when given, receives what
    each quarantine action wrote."""
    context = load_context(project_dir)
    try:
        checkpoint = context.checkpoints.get(checkpoint_name)
    except Exception:  # noqa: BLE001 - GX raises several types for a missing name
        names = [c.name for c in context.checkpoints.all()]
        raise ConfigError(f"checkpoint '{checkpoint_name}' not found in {project_dir} (have: {names})") from None
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from poison_expectations.gx.actions import batch_file
    from poison_expectations.gx.paths import project_root
    from poison_expectations.gx.runner import raise_first_exception

    with project_root(project_dir):
        context.variables.progress_bars = ProgressBarsConfig(globally=False)  # this run only; not saved
        if profile is not None:
            use_profile(checkpoint, str(profile))
        check_stored_inputs(checkpoint, project_dir)
        frame = read_table(data)
        if frame.empty:
            raise InputError(f"{data}: the table has no rows")
        with batch_file(data) as written:  # quarantine actions keep DATA's format and cells
            result = checkpoint.run(batch_parameters={"dataframe": frame})
    for validation in result.run_results.values():
        raise_first_exception(validation)
    if outputs is not None:
        outputs.extend(written)
    return result


def check_stored_inputs(checkpoint, project_dir: str | Path) -> None:
    """Every reference a stored expectation names and every data_path of a
    stored action exists (resolved against the project), before the run."""
    from poison_expectations.gx.paths import project_path
    from poison_expectations.stores import references

    registered = getattr(references, "_REGISTERED", {})  # in-process tables registered by name
    for validation in checkpoint.validation_definitions:
        for expectation in validation.suite.expectations:
            stored = getattr(expectation, "reference", None)
            if stored and stored not in registered and not Path(project_path(stored)).is_file():
                raise InputError(f"suite '{validation.suite.name}': reference {stored} not found "
                                 f"(looked for {project_path(stored)}; relative paths are relative to the "
                                 f"project {project_dir})")
    for action in checkpoint.actions:
        stored = getattr(action, "data_path", None)
        if stored and not Path(project_path(stored)).is_file():
            raise InputError(f"action '{action.name}': data_path {stored} not found (looked for "
                             f"{project_path(stored)})")


def use_profile(checkpoint, profile: str) -> None:
    """Point every poison expectation of the checkpoint's suites at `profile`."""
    from poison_expectations.gx.expectations.base import PoisonBatchExpectation
    from poison_expectations.stores.profiles import read_manifest

    read_manifest(profile)  # refuse a missing or damaged profile before any work
    for validation in checkpoint.validation_definitions:
        for expectation in validation.suite.expectations:
            if isinstance(expectation, PoisonBatchExpectation):
                expectation.reference = None
                expectation.profile = profile
