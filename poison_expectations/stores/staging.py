"""Writing outputs atomically: staging and the one publishing point.

Every output goes to a temporary file (a folder output, such as Data Docs,
to a temporary folder) beside its target; all outputs of a run are
published together at the end, with SIGINT/SIGTERM held back during the
renames, so a crash, an interrupt or a full disk never leaves a partial
file under a requested name. `stores.io` re-exports these names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from poison_expectations.core.errors import OutputError

if TYPE_CHECKING:
    import pandas as pd


def check_writable(target: str | os.PathLike) -> None:
    """Fail before a long run when `target` could not be written at its end."""
    target = Path(target)
    folder = target.parent
    if not folder.exists():
        raise OutputError(f"{target}: output folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{target}: {folder} is not a folder")
    if target.is_dir():
        raise OutputError(f"{target}: is a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write to {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


def check_writable_folder(target: str | os.PathLike) -> None:
    """Like `check_writable`, for a folder output (Data Docs): it may exist
    (as a folder); we stage beside it, so its parent must be writable too."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: not a folder")
    check_writable(target.parent / f".{target.name}.probe")
    if target.is_dir():
        check_writable(target / ".probe")


class OutputStage:
    """Temporary files and folders beside their targets, published together.

    A staged file is renamed onto its target. A staged folder (Data Docs)
    becomes its target with one rename when the target does not exist yet;
    otherwise each of its files is renamed onto its namesake inside the
    target (files of the target that the stage does not hold stay).
    """

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []  # (temporary, target)
        self.folders: list[tuple[Path, Path]] = []  # (temporary folder, target folder)
        self.created: list[Path] = []  # folders made inside targets before publishing
        self.current: Path | None = None  # the target being written, for messages

    def path(self, target: str | os.PathLike) -> Path:
        """A new temporary file for `target` (same folder, so the rename is atomic)."""
        target = Path(target)
        self.current = target
        folder = target.parent
        if not folder.is_dir():
            raise OutputError(f"{target}: output folder {folder} does not exist or is not a folder")
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        tmp = Path(name)
        self.staged.append((tmp, target))
        _apply_umask(tmp)
        return tmp

    def folder(self, target: str | os.PathLike) -> Path:
        """A new temporary folder beside the folder `target`."""
        target = Path(target)
        self.current = target
        if not target.parent.is_dir():
            raise OutputError(f"{target}: output folder {target.parent} does not exist or is not a folder")
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        self.folders.append((tmp, target))
        _apply_umask(tmp, 0o777)
        return tmp

    def commit(self, before_publish: Callable[[], object] | None = None) -> None:
        """Make the folders publishing needs, run `before_publish` (e.g. record
        the ledger), then rename everything into place with interrupts held
        back: nothing that can fail for lack of space happens after the hook."""
        self._prepare_folders()
        if before_publish is not None:
            before_publish()
        with signals_deferred():
            while self.staged:
                tmp, target = self.staged[0]
                self.current = target
                os.replace(tmp, target)
                self.staged.pop(0)
            while self.folders:
                tmp, target = self.folders[0]
                self.current = target
                _publish_folder(tmp, target)
                self.folders.pop(0)
        self.created.clear()

    def _prepare_folders(self) -> None:
        for tmp, target in self.folders:
            self.current = target
            if not target.exists():
                continue  # published by renaming the whole staged folder
            for folder in sorted(p for p in tmp.rglob("*") if p.is_dir()):
                inside = target / folder.relative_to(tmp)
                if not inside.is_dir():
                    inside.mkdir()
                    self.created.append(inside)

    def drop(self, tmp: Path) -> None:
        """Remove one staged file (its target is written another way)."""
        _remove_quietly(tmp)
        self.staged = [(t, target) for t, target in self.staged if t != tmp]

    def discard(self) -> None:
        for tmp, _ in self.staged:
            _remove_quietly(tmp)
        self.staged.clear()
        for tmp, _ in self.folders:
            shutil.rmtree(tmp, ignore_errors=True)
        self.folders.clear()
        for folder in reversed(self.created):  # empty folders made for publishing
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.created.clear()


def _publish_folder(tmp: Path, target: Path) -> None:
    """Move a staged folder's content into `target` (see OutputStage)."""
    if not target.exists():
        os.rename(tmp, target)
        return
    files = sorted(p for p in tmp.rglob("*") if not p.is_dir())
    for path in files:
        os.replace(path, target / path.relative_to(tmp))
    shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_outputs(before_publish: Callable[[], object] | None = None) -> Iterator[OutputStage]:
    """Stage outputs in the block; on success rename them all, else remove them.

    `before_publish` runs once everything is staged, before anything is
    visible. OSError (no space, permission, read-only file system) and Arrow
    write errors become OutputError naming the file; nothing partial remains.
    """
    stage = OutputStage()
    try:
        yield stage
        stage.commit(before_publish)
    except OSError as exc:
        stage.discard()
        raise OutputError(f"{stage.current}: cannot write ({exc.strerror or _first_line(exc)})") from exc
    except BaseException as exc:
        stage.discard()
        if _is_arrow_error(exc):
            raise OutputError(f"{stage.current}: cannot write ({_first_line(exc)})") from exc
        raise


def _is_arrow_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("pyarrow")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success."""
    with staged_outputs() as stage:
        yield stage.path(target)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for a short critical section, then deliver them.

    Python runs signal handlers in the main thread only, so swapping them
    there covers signals delivered to any thread (e.g. OpenMP workers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda s, _f: received.append(s)) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            handler = previous[received[0]]
            if callable(handler):
                handler(received[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(received[0])


def _apply_umask(path: Path, mode: int = 0o666) -> None:
    """mkstemp/mkdtemp create 0600/0700 entries; outputs get the usual mode & ~umask."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, mode & ~umask)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def text_writer(text: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return write


def table_writer(frame: pd.DataFrame, fmt: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
    return write


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with staged_outputs() as stage:
        text_writer(text)(stage.path(target))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
