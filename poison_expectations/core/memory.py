"""Memory guard: refuse work that would not fit, instead of being OOM-killed.

Before each large allocation (loading a table, the encoded feature matrix, a
neighbour graph) the caller estimates its size and calls `ensure_fits`. The
budget is `limits.max_memory_mb` when the config sets it, otherwise 75% of
the memory available at that moment (MemAvailable, capped by the cgroup
limit of a container). A refusal is an InputError naming what did not fit,
so the CLI exits 2 with one line rather than being killed by the kernel.
Estimates are deliberately rough upper bounds (see docs/hardening.md).
"""

from __future__ import annotations

from pathlib import Path

from poison_expectations.core.errors import InputError

AUTO_SHARE = 0.75  # share of the available memory a run may plan to use
MB = 2 ** 20


def available_memory() -> int | None:
    """Bytes this process can still allocate, or None when unknown."""
    candidates = []
    meminfo = _read("/proc/meminfo")
    if meminfo:
        for line in meminfo.splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read(limit_file), _read(usage_file)
        if limit and usage and limit.strip().isdigit() and usage.strip().isdigit():
            value = int(limit) - int(usage)
            if int(limit) < 2 ** 60:  # "unlimited" is a huge number in cgroup v1
                candidates.append(max(value, 0))
    return min(candidates) if candidates else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def budget(max_memory_mb: int | None = None) -> int | None:
    """The byte budget for one allocation: configured, or a share of what is free."""
    if max_memory_mb is not None:
        return int(max_memory_mb) * MB
    free = available_memory()
    return None if free is None else int(free * AUTO_SHARE)


def ensure_fits(nbytes: float, what: str, max_memory_mb: int | None = None) -> None:
    """Raise InputError when `nbytes` (an estimate) exceeds the budget."""
    limit = budget(max_memory_mb)
    if limit is not None and nbytes > limit:
        source = "limits.max_memory_mb" if max_memory_mb is not None else "75% of the free memory"
        raise InputError(f"{what} needs about {_size(nbytes)} of memory, more than the {_size(limit)} allowed "
                         f"({source}); split the batch, select fewer --features, or raise limits.max_memory_mb")


def _size(nbytes: float) -> str:
    units = ("bytes", "KB", "MB", "GB", "TB")
    step = 0
    while nbytes >= 1024 and step < len(units) - 1:
        nbytes /= 1024
        step += 1
    return f"{nbytes:.0f} bytes" if step == 0 else f"{nbytes:.1f} {units[step]}"
