"""Generated docs stay in step with the code."""

import subprocess
import sys

from conftest import REPO


def test_config_reference_is_current():
    generated = subprocess.run([sys.executable, "-m", "poison_expectations.core.config"], cwd=REPO, check=True,
                               capture_output=True, text=True).stdout
    assert (REPO / "docs" / "config.md").read_text() == generated, \
        "docs/config.md is stale: python -m poison_expectations.core.config > docs/config.md"
