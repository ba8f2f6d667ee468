"""The on-disk outbox: every event is written here first and removed once the transport took it.

One file per event, named by a sequence number (20 digits + .json), so delivery follows emission order. Only files
of that name are the outbox's: anything else in the folder (a stray notes.json, a staging .tmp) is ignored. A file
lock makes the outbox safe for the several processes of one mesh run. Writes are write-fsync-rename, so a crash
leaves either the whole event or nothing. An event that cannot be parsed or that the endpoint refuses for good is
moved to quarantine/ with a note of why, so it neither blocks the events behind it nor gets lost.
"""

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from platform_resources.home import private_folder

SUFFIX = ".json"
EVENT_NAME = re.compile(r"\d{20}\.json")  # the names append() writes; nothing else is an event
QUARANTINE = "quarantine"


class Outbox:
    def __init__(self, folder: Path):
        self.folder = folder

    @property
    def quarantine_folder(self) -> Path:
        return self.folder / QUARANTINE

    @contextlib.contextmanager
    def locked(self) -> Iterator["Outbox"]:
        """Exclusive use of the outbox across processes (append + deliver must not interleave)."""
        private_folder(self.folder)  # events name datasets, owners and error messages: for the owner only
        with open(_private_file(self.folder / ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def pending(self) -> list[Path]:
        """Undelivered events, oldest first."""
        if not self.folder.exists():
            return []
        return sorted(path for path in self.folder.iterdir() if EVENT_NAME.fullmatch(path.name))

    def append(self, event: dict) -> Path:
        """Store an event durably after every pending one. Call while locked."""
        existing = self.pending()
        sequence = int(existing[-1].stem) + 1 if existing else 1
        path = self.folder / f"{sequence:020d}{SUFFIX}"
        staging = path.with_suffix(".tmp")
        try:
            with open(_private_file(staging), "w") as file:
                json.dump(event, file)
                file.flush()
                os.fsync(file.fileno())  # the rename must never publish a file whose bytes are not on disk yet
            os.replace(staging, path)
        except BaseException:
            staging.unlink(missing_ok=True)  # a full disk leaves no half-written staging file behind
            raise
        return path

    def paused_until(self) -> float:
        """Until when (unix time) every process should leave the transport alone after a failure."""
        marker = self.folder / ".paused_until"
        try:
            return float(marker.read_text())
        except (FileNotFoundError, ValueError):  # no pause, or a marker cut short: nothing to wait for
            return 0.0

    def pause(self, until: float) -> None:
        with open(_private_file(self.folder / ".paused_until"), "w") as marker:
            marker.write(str(until))

    def resume(self) -> None:
        (self.folder / ".paused_until").unlink(missing_ok=True)

    @staticmethod
    def read(path: Path) -> dict:
        """The event stored at path; ValueError when the file holds no JSON object (cut short, or not an event)."""
        try:
            event = json.loads(path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        if not isinstance(event, dict):
            raise ValueError(f"a JSON {type(event).__name__}, not an event object")
        return event

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink(missing_ok=True)

    def quarantine(self, path: Path, reason: str) -> Path:
        """Move an event that cannot be delivered out of the way, kept with a note of why. Call while locked."""
        private_folder(self.quarantine_folder)
        target = self.quarantine_folder / path.name
        copy = 1
        while target.exists():  # sequence numbers restart once the outbox empties: never overwrite a kept event
            target = self.quarantine_folder / f"{path.stem}-{copy}{SUFFIX}"
            copy += 1
        os.replace(path, target)
        with open(_private_file(target.with_suffix(".reason.txt")), "w") as note:
            note.write(reason + "\n")
        return target


def _private_file(path: Path) -> int:
    """A descriptor of `path` opened for writing (created 0600, emptied), whatever the process umask."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
