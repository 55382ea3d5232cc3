"""Generated docs stay in step with the code."""

import os
import re
import subprocess
import sys

from conftest import REPO


def test_config_reference_is_current():
    generated = subprocess.run([sys.executable, "-m", "poison_expectations.core.config"], cwd=REPO, check=True,
                               capture_output=True, text=True).stdout
    assert (REPO / "docs" / "config.md").read_text() == generated, \
        "docs/config.md is stale: python -m poison_expectations.core.config > docs/config.md"


def _readme_block(heading: str, language: str = "python") -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading):]
    start = section.index(f"```{language}\n") + len(f"```{language}\n")
    return section[start:section.index("```", start)]


def test_readme_gx_example_runs_as_written(tmp_path):
    """The README's GX snippet is a whole program: project, suite,
    validation definition, checkpoint, run (in a folder with the samples)."""
    from conftest import _scratch_folder

    script = tmp_path / "example.py"
    script.write_text(_readme_block("## Using it in your GX project"))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, str(script)], cwd=_scratch_folder(), env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert "checkpoint passed: False" in lines
    assert any(line.startswith("expect_label_inconsistency_rate_to_be_at_most False") for line in lines)
    assert any(line.startswith("expect_row_labels_to_be_consistent True") for line in lines)  # mostly 0.9


def _readme_quickstart() -> tuple[dict, list[str]]:
    """The README's first command without the install step: (environment prefix, argv)."""
    import shlex

    command = _readme_block("## Quickstart", language="").strip().split(" && ", 1)[1]
    words = shlex.split(command)
    prefix = [w for w in words[:words.index("poison-check")] if re.fullmatch(r"[A-Z_]+=\S*", w)]
    return dict(w.split("=", 1) for w in prefix), words[len(prefix):]


def test_readme_quickstart_passes_after_poisoned_source_runs(tmp_path):
    """Validating train_poisoned_source.csv (twice) must not make the README's
    clean command fail: the sample commands use their own empty ledger."""
    from conftest import _scratch_folder

    env_prefix, argv = _readme_quickstart()
    assert argv[:2] == ["poison-check", "validate"] and "POISON_EXPECTATIONS_LEDGER" in env_prefix
    env = {**os.environ, **env_prefix, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    folder = _scratch_folder()
    fast = tmp_path / "fast.yml"
    fast.write_text("expectations:\n  label_consistency:\n    method: knn\n")
    cli = [sys.executable, "-m", "poison_expectations"]
    poisoned = [*cli, "validate", "sample_data/train_poisoned_source.csv", *argv[3:], "--config", str(fast)]
    for _ in range(2):
        run = subprocess.run(poisoned, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 1, run.stderr
    clean = subprocess.run([*cli, *argv[1:]], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stdout + clean.stderr
