"""`--data-docs DIR`: GX Data Docs for a validation run.

The run's validation results go into a GX context whose one Data Docs site
is DIR, and GX builds the site: the usual index, one validation page per
run (our prescriptive sentences, the observed values, flagged ids and
detail tables from `PoisonRendering`) and the suite page. The context keeps
its validation results under DIR/.poison_check/, so repeated runs into the
same DIR accumulate in the index like a normal GX project's site.
"""

from __future__ import annotations

import logging
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


def build_data_docs(checkpoint_result, directory: str | Path) -> Path:
    """Add the checkpoint's validation results to the site in DIR; return the
    path of the (last) validation page."""
    import great_expectations as gx

    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create the Data Docs folder ({exc.strerror or exc})") from None
    if not directory.is_dir():
        raise OutputError(f"{directory}: not a folder")
    context = docs_context(directory)
    for key, validation in checkpoint_result.run_results.items():
        context.validation_results_store.set(key, validation)
        suite_name = validation.suite_name
        configs = [r.expectation_config for r in validation.results]
        if suite_name not in {s.name for s in context.suites.all()}:
            context.suites.add(gx.ExpectationSuite(
                name=suite_name, expectations=configs))
    try:
        context.build_data_docs(site_names=[SITE_NAME])
    except OSError as exc:
        raise OutputError(f"{directory}: cannot write Data Docs ({exc.strerror or exc})") from None
    pages = [validation_page(directory, key) for key in checkpoint_result.run_results]
    return pages[-1] if pages else directory / "index.html"


def validation_page(directory: str | Path, key) -> Path:
    """Where GX's site builder puts the page of one ValidationResultIdentifier."""
    parts = key.to_tuple()  # (suite, run name, run time, batch id)
    return Path(directory).joinpath("validations", *parts[:-1], f"{parts[-1]}.html")
