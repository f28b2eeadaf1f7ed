"""Line protocol appended to a local file, rotated by size (`path` → `path.1` → … `path.<keep>`).

Useful as an audit trail, for `influx -import`, or where no database is reachable. A write is one
`write(2)` on the event loop thread, like the spool's appends; a failing disk is a WriteError, so
the batch waits in the (memory) buffer and is retried.
"""

from __future__ import annotations

import os
from pathlib import Path

from fobs.collector.historians.config import FileConfig
from fobs.collector.historians.errors import WriteError


class FileHistorian:
    """`Historian` writing newline-terminated line protocol to `config.path`."""

    def __init__(self, config: FileConfig, name: str = "file") -> None:
        self.config = config
        self.name = name
        self.path = Path(config.path)
        self._fd: int | None = None
        self._size = 0

    async def connect(self) -> None:
        self._open()

    def _open(self) -> None:
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                               0o644)
            self._size = os.fstat(self._fd).st_size
        except OSError as e:
            raise WriteError(f"write: {self.path}: {e.strerror}") from None

    async def write(self, data: bytes) -> None:
        self._open()
        if self._size and self._size + len(data) > self.config.rotate_bytes:
            self._rotate()
        assert self._fd is not None
        start = self._size
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self._size += n
        except OSError as e:
            try:                                   # no half batch in front of the retry
                os.ftruncate(self._fd, start)
                self._size = start
            except OSError:
                pass
            raise WriteError(f"write: {self.path}: {e.strerror}") from None

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        try:
            if self.config.keep == 0:
                os.truncate(self.path, 0)
            else:
                for i in range(self.config.keep - 1, 0, -1):
                    older = self.path.with_name(f"{self.path.name}.{i}")
                    if older.exists():
                        older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        except OSError as e:
            raise WriteError(f"rotate: {self.path}: {e.strerror}") from None
        self._open()

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
