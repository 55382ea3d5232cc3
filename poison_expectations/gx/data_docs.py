"""`--data-docs DIR`: GX Data Docs for a validation run.

The run's validation results go into a GX context whose one Data Docs site
is DIR, and GX builds the site: the usual index, one validation page per
run (our prescriptive sentences, the observed values, flagged ids and
detail tables from `PoisonRendering`) and the suite page. The context keeps
its validation results under DIR/.poison_check/, so repeated runs into the
same DIR accumulate in the index like a normal GX project's site.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from poison_expectations.core.errors import OutputError

SITE_NAME = "poison_check"
RESULTS_FOLDER = Path(".poison_check") / "validation_results"


def docs_context(directory: str | Path):
    """An in-memory GX context whose validation results persist in DIR and
    whose only Data Docs site is DIR."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    directory = Path(directory).resolve()
    defaults = InMemoryStoreBackendDefaults()
    defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory / RESULTS_FOLDER)}
    defaults.data_docs_sites = {SITE_NAME: {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }}
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(store_backend_defaults=defaults))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def build_data_docs(checkpoint_result, directory: str | Path, staging: str | Path | None = None) -> Path:
    """Add the checkpoint's validation results to the site in DIR; return the
    path of the (last) validation page in DIR.

    With `staging` (an empty folder that `stores.staging` later publishes as
    DIR), the site is built there, from DIR's earlier results plus this run's,
    and DIR is not touched. Any failure (a full disk included, which GX itself
    only logs) is one OutputError."""
    directory = Path(directory)
    site = Path(staging) if staging is not None else directory
    try:
        site.mkdir(parents=True, exist_ok=True)
        if staging is not None and (directory / RESULTS_FOLDER).is_dir():
            shutil.copytree(directory / RESULTS_FOLDER, site / RESULTS_FOLDER, dirs_exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot write Data Docs ({exc.strerror or exc})") from None
    if not site.is_dir():
        raise OutputError(f"{directory}: not a folder")
    with _gx_errors() as errors:
        try:
            _build_site(checkpoint_result, site)
        except Exception as exc:  # noqa: BLE001 - GX wraps OSError in its own store errors
            errors.append(_first_line(exc))
    if errors:
        raise OutputError(f"{directory}: cannot write Data Docs ({errors[0]})")
    pages = [validation_page(directory, key) for key in checkpoint_result.run_results]
    return pages[-1] if pages else directory / "index.html"


def _build_site(checkpoint_result, site: Path) -> None:
    import great_expectations as gx

    context = docs_context(site)
    for key, validation in checkpoint_result.run_results.items():
        context.validation_results_store.set(key, validation)
        suite_name = validation.suite_name
        configs = [r.expectation_config for r in validation.results]
        if suite_name not in {s.name for s in context.suites.all()}:
            context.suites.add(gx.ExpectationSuite(
                name=suite_name, expectations=configs))
    context.build_data_docs(site_names=[SITE_NAME])


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(_first_line(record.exc_info[1]) if record.exc_info else record.getMessage())


@contextlib.contextmanager
def _gx_errors():
    """GX logs (with a traceback) and skips a page it cannot write: collect
    those errors instead of printing them, so a failed build is reported."""
    errors: list[str] = []
    logger = logging.getLogger("great_expectations")
    handler, propagate = _Collect(errors), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield errors
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else type(exc).__name__)


def validation_page(directory: str | Path, key) -> Path:
    """Where GX's site builder puts the page of one ValidationResultIdentifier."""
    parts = key.to_tuple()  # (suite, run name, run time, batch id)
    return Path(directory).joinpath("validations", *parts[:-1], f"{parts[-1]}.html")
