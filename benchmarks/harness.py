"""Tiny benchmark harness: run one measurement per child process, so peak
RSS (ru_maxrss of the child) belongs to that measurement alone."""

from __future__ import annotations

import argparse
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


def script_child(script: str | Path, *args: str, timeout: float = 7200) -> dict:
    """Run `python SCRIPT --child ARGS` in its own process (so its peak RSS is
    its own) and return the JSON object on its last stdout line."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(script), "--child", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(script).name} {args}: exit {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def size_sweep(script: str | Path, child, description: str,
               default_sizes: str = "10000,100000,1000000") -> tuple[argparse.Namespace, list[dict] | None]:
    """Command line of the per-signal speed scripts: `--child N` prints
    child(N) as JSON (rows None); otherwise every size in --sizes runs in its
    own process and its JSON row is printed and returned."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sizes", default=default_sizes, help="comma-separated row counts")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the results file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return args, None
    rows = []
    for n in (int(size) for size in args.sizes.split(",")):
        rows.append(script_child(script, n))
        print(json.dumps(rows[-1]), flush=True)
    return args, rows


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_line() -> str:
    return (f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.platform()}")


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(key for row in rows for key in row))  # every row's keys, first seen first
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
