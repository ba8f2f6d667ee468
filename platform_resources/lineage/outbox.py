"""The on-disk outbox: every event is written here first and removed once the transport took it.

One file per event, named by a sequence number, so delivery follows emission order. A file lock makes the
outbox safe for the several processes of one mesh run. Writes are write-then-rename, so a crash leaves
either the whole event or nothing.
"""

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".json"


class Outbox:
    def __init__(self, folder: Path):
        self.folder = folder

    @contextlib.contextmanager
    def locked(self) -> Iterator["Outbox"]:
        """Exclusive use of the outbox across processes (append + deliver must not interleave)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def pending(self) -> list[Path]:
        """Undelivered events, oldest first."""
        return sorted(self.folder.glob(f"*{SUFFIX}")) if self.folder.exists() else []

    def append(self, event: dict) -> Path:
        """Store an event durably after every pending one. Call while locked."""
        existing = self.pending()
        sequence = int(existing[-1].stem) + 1 if existing else 1
        path = self.folder / f"{sequence:020d}{SUFFIX}"
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps(event))
        os.replace(staging, path)
        return path

    def paused_until(self) -> float:
        """Until when (unix time) every process should leave the transport alone after a failure."""
        marker = self.folder / ".paused_until"
        return float(marker.read_text()) if marker.exists() else 0.0

    def pause(self, until: float) -> None:
        (self.folder / ".paused_until").write_text(str(until))

    def resume(self) -> None:
        (self.folder / ".paused_until").unlink(missing_ok=True)

    @staticmethod
    def read(path: Path) -> dict:
        return json.loads(path.read_text())

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink(missing_ok=True)
