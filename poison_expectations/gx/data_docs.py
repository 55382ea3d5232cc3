"""`--data-docs DIR`: GX Data Docs for a validation run.

The run's validation results go into a GX context whose one Data Docs site
is DIR, and GX builds the site: the usual index, one validation page per
run (our prescriptive sentences, the observed values, flagged ids and
detail tables from `PoisonRendering`) and the suite page. The context keeps
its validation results under DIR/.poison_check/, so repeated runs into the
same DIR accumulate in the index like a normal GX project's site.

GX's page templates load Bootstrap, jQuery, bootstrap-table and Font Awesome
from CDNs: offline, the index lists no runs and the status icons are blank.
A gate's pages must work on an air-gapped machine, so after each build every
page's CDN links are replaced by a small stylesheet and script shipped in
the package (static/), copied into DIR/static/poison_check/, and the status
icons carry their glyph as text.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from poison_expectations.core.errors import OutputError

SITE_NAME = "poison_check"
RESULTS_FOLDER = Path(".poison_check") / "validation_results"
ASSETS = Path(__file__).parent / "static"
ASSET_FOLDER = Path("static") / "poison_check"
_CDN_TAG = re.compile(r"<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>\s*"
                      r"|<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>\s*", re.I)
_ICON = re.compile(r"<i class=\"([^\"]*\bfa-(times|check-circle|check|exclamation-triangle)\b[^\"]*)\"([^>]*)></i>")
_GLYPHS = {"times": "&#10007;", "check-circle": "&#10003;", "check": "&#10003;", "exclamation-triangle": "!"}


def check_docs_folder(directory: str | Path) -> None:
    """Fail before a long run when DIR cannot take the site: DIR may be new,
    an empty folder or a site of ours from an earlier run (which the new run
    is added to); any other existing folder is refused, not overwritten."""
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise OutputError(f"{directory}: not a folder")
        if any(directory.iterdir()) and not (directory / RESULTS_FOLDER).is_dir():
            raise OutputError(f"{directory}: the folder is not empty and holds no earlier poison-check Data Docs; "
                              "give a new or empty folder, or one a previous --data-docs run wrote")
        probe = directory
    else:
        probe = next(p for p in directory.absolute().parents if p.exists())
        if not probe.is_dir():
            raise OutputError(f"{directory}: {probe} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".poison-check-", dir=probe)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot write to {probe} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)



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
    make_offline(site)
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


def make_offline(directory: str | Path) -> None:
    """Point every page of the site at our packaged assets instead of CDNs."""
    directory = Path(directory)
    assets = directory / ASSET_FOLDER
    try:
        assets.mkdir(parents=True, exist_ok=True)
        for asset in ("offline.css", "offline.js"):
            shutil.copyfile(ASSETS / asset, assets / asset)
        for page in directory.rglob("*.html"):
            if ".poison_check" in page.relative_to(directory).parts:
                continue
            text = page.read_text(encoding="utf-8")
            page.write_text(offline_page(text, Path(os.path.relpath(assets, page.parent)).as_posix()),
                            encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{directory}: cannot write Data Docs ({exc.strerror or exc})") from None


def offline_page(text: str, assets: str) -> str:
    """The page without CDN tags, with our stylesheet and script, and icon glyphs as text."""
    text = _CDN_TAG.sub("", text)
    if "poison_check/offline.js" not in text:
        tags = (f'<link rel="stylesheet" href="{assets}/offline.css">\n'
                f'    <script src="{assets}/offline.js"></script>\n')
        text = text.replace("</head>", tags + "  </head>", 1)
    return _ICON.sub(lambda m: f'<i class="{m.group(1)} poison-icon"{m.group(3)}>{_GLYPHS[m.group(2)]}</i>', text)
