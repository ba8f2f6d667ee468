"""Make a file or folder truly unwritable for a test, as a read-only mount or a foreign owner would.

A test helper, not a test file. Permission bits do not bind root (CI containers often run as root), so there the
path is also made immutable (chattr +i). A test skips, saying why, when neither works.
"""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _chattr(flag: str, path: Path) -> bool:
    try:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def _writable(path: Path) -> bool:
    probe = (path if path.is_dir() else path.parent) / ".write-probe"
    try:
        if path.is_dir():
            probe.touch()
            probe.unlink()
        else:
            with open(path, "a"):
                pass
    except OSError:
        return False
    return True


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[Path]:
    """Within the block nobody, root included, can change `path` (a folder: nor create files in it)."""
    mode = path.stat().st_mode
    path.chmod(mode & ~0o222)
    immutable = os.geteuid() == 0 and _chattr("+i", path)
    try:
        if _writable(path):
            pytest.skip(f"cannot make {path} read-only here (root without chattr +i)")
        yield path
    finally:
        if immutable:
            _chattr("-i", path)
        path.chmod(mode)
