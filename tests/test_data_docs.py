"""GX Data Docs for a run, checked in a real browser (headless Chromium), and
every expectation's prescriptive sentence."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from string import Template

import pytest
from great_expectations.expectations.registry import get_expectation_impl

import poison_expectations as pe
from conftest import REPO
from poison_expectations.core.details import detail_blocks, fmt

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                    "(Debian: apt-get install -y chromium; .ci/run does this)")


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _browser(tmp_path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


def test_every_expectation_renders_a_sentence_with_its_parameters():
    for name in pe.__all__:
        cls = getattr(pe, name)
        if not name.startswith("Expect"):
            continue
        template = cls.renderer_template
        assert template, f"{name} has no prescriptive sentence"
        used = set(re.findall(r"\$(\w+)", template))
        assert used <= set(cls.renderer_params), f"{name}: {used - set(cls.renderer_params)} not in renderer_params"


@needs_chromium
def test_data_docs_page_shows_sentences_and_failing_values_in_chromium(cli, tmp_path):
    config = tmp_path / "fast.yml"
    config.write_text("expectations:\n  label_consistency:\n    method: knn\n")
    docs, report = tmp_path / "docs", tmp_path / "report.json"
    run = cli("validate", "sample_data/train_poisoned_flips.csv", "--label", "label", "--id-column", "row_id",
              "--source-column", "source", "--reference", "sample_data/reference.csv", "--config", config,
              "--data-docs", docs, "--report", report, "--html", tmp_path / "report.html")
    assert run.returncode == 1, run.stderr
    page = next(line.split(": ", 1)[1] for line in run.stdout.splitlines() if line.startswith("data_docs: "))
    assert (docs / "index.html").is_file() and page.endswith(".html")

    shown = _browser(tmp_path, "--dump-dom", f"file://{page}")
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = _squash(_visible_text(shown.stdout))
    results = [r for v in json.loads(report.read_text())["checkpoint_result"]["validation_results"]
               for r in v["results"]]
    assert results
    for result in results:
        config_ = result["expectation_config"]
        cls = get_expectation_impl(config_["type"])
        values = {k: "–" for k in cls.renderer_params}  # unset limits render as a dash
        values.update({k: str(v) for k, v in config_["kwargs"].items() if v is not None})
        sentence = Template(cls.renderer_template).safe_substitute(values)
        assert _squash(sentence) in text, f"sentence of {config_['type']} missing"
        body = result["result"]
        assert _squash(fmt(body["observed_value"])) in text
        assert _squash(f"{body['unexpected_count']} of {body['element_count']}") in text
        for flagged_id in body["partial_unexpected_list"][:5]:
            assert str(flagged_id) in text
        for table in detail_blocks(body["details"]).tables:  # per class, reference gate, ...
            assert _squash(table.title) in text
    failed = [r for r in results if not r["success"]]
    assert failed and _squash("Status: \u2717 Failed") in text

    for name, target in (("datadocs", page), ("report", tmp_path / "report.html")):
        shot = tmp_path / f"{name}.png"
        taken = _browser(tmp_path, "--window-size=1280,2200", f"--screenshot={shot}", f"file://{target}")
        assert taken.returncode == 0 and shot.stat().st_size > 20_000, taken.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


OFFLINE_FLAGS = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


def _run_name(page: str) -> str:
    return page.split("/validations/", 1)[1].split("/")[1]  # validations/<suite>/<run name>/<time>/<batch>.html


def test_data_docs_folder_may_exist_when_empty_or_ours(tmp_path):
    from poison_expectations.core.errors import OutputError
    from poison_expectations.gx.data_docs import RESULTS_FOLDER, check_docs_folder

    check_docs_folder(tmp_path / "new" / "docs")  # created by the run
    check_docs_folder(tmp_path)  # empty
    (tmp_path / RESULTS_FOLDER).mkdir(parents=True)
    (tmp_path / "index.html").write_text("<html></html>")
    check_docs_folder(tmp_path)  # a site of ours: the run adds to it
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        check_docs_folder(foreign)
    with pytest.raises(OutputError, match="not a folder"):
        check_docs_folder(foreign / "notes.txt")


@needs_chromium
def test_data_docs_work_offline_and_a_second_run_adds_to_the_index(cli, tmp_path):
    """An existing empty DIR is accepted; two runs into it are both in the index,
    read with the network off; the failed expectation is marked failed."""
    config = tmp_path / "fast.yml"
    config.write_text("expectations:\n  label_consistency:\n    method: knn\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    roles = ["--label", "label", "--id-column", "row_id", "--config", config, "--data-docs", docs]
    failed = cli("validate", "sample_data/train_poisoned_flips.csv", *roles, "--reference", "sample_data/reference.csv")
    passed = cli("validate", "sample_data/train_clean.csv", *roles)
    assert (failed.returncode, passed.returncode) == (1, 0), failed.stderr + passed.stderr
    pages = [next(line.split(": ", 1)[1] for line in run.stdout.splitlines() if line.startswith("data_docs: "))
             for run in (failed, passed)]

    for page in docs.rglob("*.html"):  # nothing is loaded from a CDN
        text = page.read_text()
        assert not re.search(r"<(script|link)\b[^>]*(src|href)=\"https?://", text), page

    index = _browser(tmp_path, *OFFLINE_FLAGS, "--dump-dom", (docs / "index.html").as_uri())
    assert index.returncode == 0, index.stderr[-2000:]
    rows = re.findall(r"<tr class=\"clickable-row\" data-href=\"(validations/[^\"]+)\">(.*?)</tr>", index.stdout,
                      flags=re.S)
    listed = {_run_name("/" + href): _squash(_visible_text(row)) for href, row in rows}
    assert set(listed) == {_run_name(page) for page in pages}
    assert "Failed" in listed[_run_name(pages[0])] and "\u2717" in listed[_run_name(pages[0])]
    assert "Success" in listed[_run_name(pages[1])] and "\u2713" in listed[_run_name(pages[1])]

    shown = _browser(tmp_path, *OFFLINE_FLAGS, "--dump-dom", f"file://{pages[0]}")
    assert shown.returncode == 0, shown.stderr[-2000:]
    cells = re.findall(r"<tr\b.*?</tr>", shown.stdout, flags=re.S)
    failing = [c for c in cells if "Share of rows whose label" in _visible_text(c)]
    assert failing and "\u2717" in _visible_text(failing[0])
    assert _squash("Status: \u2717 Failed") in _squash(_visible_text(shown.stdout))


LAYOUT_CHECK = """<script>
(function () {
  var bad = [], width = window.innerWidth;
  document.querySelectorAll('.card, .verdict').forEach(function (card) {
    var box = card.getBoundingClientRect();
    card.querySelectorAll('*').forEach(function (el) {
      var r = el.getBoundingClientRect();
      if (r.width && (r.right > box.right + 1 || r.left < box.left - 1)) {
        bad.push(el.tagName + ': ' + (el.textContent || '').slice(0, 60));
      }
    });
  });
  var reasons = Array.prototype.map.call(document.querySelectorAll('tr.reasons td'), function (td) {
    return td.getBoundingClientRect().width / td.closest('.card').getBoundingClientRect().width;
  });
  var out = document.createElement('pre');
  out.id = 'layout-check';
  out.textContent = JSON.stringify({bad: bad.slice(0, 20), scrolls: document.documentElement.scrollWidth > width,
                                    reasons: reasons, width: width});
  document.body.appendChild(out);
})();
</script>"""


def _stated_report_kb() -> int:
    text = (REPO / "docs" / "user_outputs.md").read_text()
    return int(re.search(r"3000-row report of .*? is about (\d+) kB", text, re.S).group(1))


@needs_chromium
def test_html_report_fills_its_sentences_and_fits_its_cards_in_chromium(cli, tmp_path):
    """No `$name` left, no raw JSON cells, no element wider than its card at
    1,280 px, reasons across the whole table, and the size the docs state."""
    report = tmp_path / "report.html"
    run = cli("validate", "sample_data/train_poisoned_source.csv", "--label", "label", "--id-column", "row_id",
              "--source-column", "source", "--reference", "sample_data/reference.csv", "--html", report)
    assert run.returncode == 1, run.stderr
    page = report.read_text()
    text = _visible_text(page)
    assert not re.findall(r"\$\w+", text), "unfilled placeholders"
    assert "label label" not in text and '{"' not in text, "raw names or JSON in the text"
    stated = _stated_report_kb()
    assert len(page.encode()) <= stated * 1.2 * 1024, f"{len(page.encode()) // 1024} kB, docs say about {stated}"

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", LAYOUT_CHECK + "</body>"))
    shown = _browser(tmp_path, "--window-size=1280,2000", "--virtual-time-budget=3000", "--dump-dom",
                     f"file://{probe}")
    assert shown.returncode == 0, shown.stderr[-2000:]
    layout = json.loads(html.unescape(re.search(r'<pre id="layout-check">(.*?)</pre>', shown.stdout, re.S).group(1)))
    assert layout["width"] == 1280
    assert not layout["bad"] and not layout["scrolls"], layout
    assert layout["reasons"] and min(layout["reasons"]) > 0.8  # the reasons run across the card
