"""Files that hold customer data or secrets: created 0600, in directories created 0700.

Sluice's database, outbox files, dry-run samples, staged candidates and the unsubscribe
keyring hold addresses, tokens or keys. Their directories are created 0700 and the files
0600 whatever the umask; an existing file others may read is tightened where this
process owns it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

PRIVATE = 0o077
"""Mode bits that let anyone but the owner in."""


def private_dir(path: Path, tighten: bool = False) -> Path:
    """``path`` as a directory; those created here (parents too) are 0700 whatever the
    umask. ``tighten``: an existing ``path`` is made 0700 as well."""
    missing: list[Path] = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            if not d.is_dir():
                raise
            continue  # a concurrent creator's directory
        d.chmod(0o700)
    if tighten and path.stat().st_mode & PRIVATE:
        path.chmod(0o700)
    return path


def private_fd(path: Path, flags: int) -> int:
    """``path`` opened with ``flags`` (plus O_CREAT, never through a symlink), created
    0600; an existing file that others may read is tightened to 0600 where this process
    owns it."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_mode & PRIVATE:
            os.fchmod(fd, 0o600)
    except PermissionError:
        pass  # not ours to change; it was readable before
    except BaseException:
        os.close(fd)
        raise
    return fd


def tighten(path: Path) -> None:
    """An existing ``path`` made 0600 if others may read it (absent or not ours: left)."""
    try:
        if path.stat().st_mode & PRIVATE:
            path.chmod(0o600)
    except (FileNotFoundError, PermissionError):
        pass


def open_private(path: Path) -> TextIO:
    """``path`` opened for appending UTF-8 text, created 0600 in a 0700 directory."""
    private_dir(path.parent)
    return os.fdopen(private_fd(path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")
