"""An exclusive lock on a data directory, so two processes never share one.

``fcntl.flock`` on a ``LOCK`` file we own, taken before LevelDB opens (LevelDB
keeps its own lock inside its database folder too). The kernel drops the lock
when the process dies, however it dies, so a SIGKILLed node never leaves a stale
lock behind. The file records the holder's pid for the operator's benefit only.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from storage.errors import StorageError, StoreLockedError

LOCK_NAME = "LOCK"


class DirectoryLock:
    """Holds an exclusive flock on ``<directory>/LOCK`` until released."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: str | Path) -> DirectoryLock:
        """Lock ``directory`` (created if missing) or raise StoreLockedError."""
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create the lock file in {path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreLockedError(
                f"data directory {path} is locked by another process{holder}: another node "
                f"is already running on it. Stop that node, or give this one its own --home."
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock {path / LOCK_NAME}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
