"""`poison-check fit`: fit every enabled family once on a trusted table and
store the result as a profile, so batches are scored without refitting."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any, Callable

from poison_expectations.core.cost import Deadline
from poison_expectations.core.fitting import fit_profile
from poison_expectations.core.profile import Profile
from poison_expectations.core.version import VERSION
from poison_expectations.stores.io import read_table
from poison_expectations.stores.profiles import save_profile


def fit_job(trusted: str | Path, config: dict, out: str | Path,
            progress: Callable[[str], Any] | None = None) -> Profile:
    """Read TRUSTED within the limits, fit, write the profile atomically."""
    from poison_expectations.gx.metrics.base import options_from, roles_from
    from poison_expectations.gx.runner import build_expectations, shared_kwargs

    limits = config["limits"]
    deadline = Deadline(limits.get("max_seconds"))
    frame = read_table(trusted, max_rows=limits["max_rows"], max_memory_mb=limits["max_memory_mb"])
    stored = copy.deepcopy(config)
    stored["data"]["reference"] = stored["data"]["profile"] = None  # the trusted table IS the fitted side
    shared = shared_kwargs(stored)
    signals = list({s.cache_key(): s for s in (e.signal() for e in build_expectations(stored))}.values())
    meta = {"plugin_version": VERSION, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "trusted_file": str(trusted), "config": stored}
    profile = fit_profile(frame, roles_from(shared), options_from(shared), signals, meta=meta,
                          progress=progress, max_memory_mb=limits["max_memory_mb"], deadline=deadline)
    save_profile(profile, out)
    return profile


def describe(profile: Profile, path: str | Path) -> list[str]:
    """What `poison-check profile show` prints: one fact per line."""
    meta = profile.meta
    roles = meta["roles"]
    lines = [
        f"profile {path}",
        f"  format {meta['format']} v{meta['format_version']}, written by poison-expectations "
        f"{meta.get('plugin_version')} on {meta.get('created')}",
        f"  trusted table: {meta.get('trusted_file')} ({meta['rows']} rows, sha256 {meta['data_sha256'][:16]}...)",
        f"  label {roles['label_column']!r}, id {roles['id_column']!r}, source {roles['source_column']!r}",
        f"  features ({len(roles['feature_columns'])}): {', '.join(roles['feature_columns'][:20])}"
        + (" ..." if len(roles["feature_columns"]) > 20 else ""),
        f"  encoded width {profile.encoder.n_features}; neighbour index "
        f"{'exact' if profile.index.exact else 'HNSW'}; graphs k={sorted(profile.graphs) or '-'}",
    ]
    if profile.classes is not None:
        lines.append(f"  classes ({len(profile.classes)}): {', '.join(map(repr, profile.classes[:20]))}")
    lines.append("  fitted signals (trusted rows flagged in their self-check):")
    for key in profile.states:
        name, params = key[0], dict(key[1])
        fitted = profile.fitted_results.get(name, {})
        rate = fitted.get("flagged_rate")
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
        lines.append(f"    {name}: {fitted.get('flagged', '?')} rows"
                     + (f" ({rate:.2%})" if rate is not None else "") + f"  [{shown}]")
    return lines
