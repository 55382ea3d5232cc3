"""Tiny benchmark harness: run one measurement per child process, so peak
RSS (ru_maxrss of the child) belongs to that measurement alone."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure_child(module: str, *args: str, timeout: float = 3600) -> dict:
    """Run `python -m benchmarks.<module> --child ARGS`; it prints one JSON line."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--child", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {args}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    payload.setdefault("process_wall_s", round(wall, 2))
    return payload


def script_child(script: str | Path, *args: str) -> dict:
    """Run `python SCRIPT --child ARGS` in its own process (so its peak RSS is
    its own) and return the JSON object on its last stdout line."""
    proc = subprocess.run([sys.executable, str(script), "--child", *map(str, args)], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_line() -> str:
    return (f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.platform()}")


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
