"""A progress bar per signal on stderr, for people watching a terminal.

`run_validation(progress=...)` accepts a plain callable (called with each
step's name) or a `StepProgress`, which also learns the step count and
when the run ends. The CLI only creates one when stderr is a TTY and
`--quiet` is not given, so logs, pipes and JSON consumers never see it.

While a step runs, a background thread redraws one line every
`REFRESH_SECONDS`: the overall bar, the step and its elapsed time. A
finished step leaves a line with its duration.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TextIO

BAR_WIDTH = 24
REFRESH_SECONDS = 0.2
SPINNER = "|/-\\"


class StepProgress:
    """Draws `[#####.....] 2/4 label_consistency 3.1 s` and one line per finished step."""

    def __init__(self, stream: TextIO | None = None, refresh: float = REFRESH_SECONDS) -> None:
        self.stream = stream or sys.stderr
        self.refresh = refresh
        self._step: str | None = None
        self._index = 0
        self._total = 0
        self._started = 0.0
        self._tick = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- protocol used by the runner -------------------------------------
    def __call__(self, name: str) -> None:
        """Plain-callable form: a step of unknown position."""
        self.step(name, self._index + (self._step is not None), 0)

    def step(self, name: str, index: int, total: int) -> None:
        """Step `index` (0-based) of `total` starts; the previous one is done."""
        with self._lock:
            self._total = total  # may only now be known (0 = unknown)
            self._finish_current()
            self._step, self._index = name, index
            self._started = time.perf_counter()
            self._draw()
        if self._thread is None:
            self._thread = threading.Thread(target=self._ticker, name="poison-check-progress", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """The run is over (or failed): finish the last line and stop redrawing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        with self._lock:
            self._finish_current()

    # -- drawing -----------------------------------------------------------
    def _ticker(self) -> None:
        while not self._stop.wait(self.refresh):
            with self._lock:
                if self._step is not None:
                    self._tick += 1
                    self._draw()

    def _bar(self, done: int) -> str:
        filled = int(round(BAR_WIDTH * done / self._total)) if self._total else 0
        return "#" * filled + "." * (BAR_WIDTH - filled)

    def _count(self, position: int) -> str:
        return f"{position}/{self._total or '?'}"

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self._started
        spin = SPINNER[self._tick % len(SPINNER)]
        line = (f"poison-check [{self._bar(self._index)}] {self._count(self._index + 1)} "
                f"{spin} {self._step}  {elapsed:.1f} s")
        self._write("\r\x1b[2K" + line)

    def _finish_current(self) -> None:
        if self._step is None:
            return
        elapsed = time.perf_counter() - self._started
        done = self._index + 1
        self._write(f"\r\x1b[2Kpoison-check [{self._bar(done)}] {self._count(done)} "
                    f"done {self._step}  {elapsed:.1f} s\n")
        self._step = None

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed terminal must not fail the run
            self.stream.write(text)
            self.stream.flush()


def notify(progress, name: str, index: int, total: int) -> None:
    """Tell `progress` (a StepProgress-like object or a plain callable) that a step starts."""
    if progress is None:
        return
    step = getattr(progress, "step", None)
    if callable(step):
        step(name, index, total)
    else:
        progress(name)


def finish(progress) -> None:
    close = getattr(progress, "close", None)
    if callable(close):
        close()
