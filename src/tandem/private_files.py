"""Modes of what Tandem keeps on disk: the data directory is 0700, the database and the key
files are 0600, so other accounts on the host can read none of it.

New ones are created with those modes. Existing ones with looser modes (an older version
created ``tandem.sqlite3`` 0644 in a 0755 directory) are tightened; where that is not possible
(another owner), a warning says so and what to run; on a read-only file system, where chmod
cannot help, a directory gets no warning (opening the database there fails with its own error)
and a file one saying to set its mode where it is mounted from.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("tandem.files")

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode == 0:
        return
    try:
        os.chmod(path, current & mode)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            # chmod cannot help on a read-only file system. A data directory there fails to
            # open next, with its own error (naming the file system); a key file mounted
            # read-only (a container's secret volume) gets its mode where it is mounted from.
            if not stat.S_ISDIR(path.stat().st_mode):
                log.warning(
                    "%s has mode %o, readable by other accounts, on a read-only file system: "
                    "give it mode %o where it is mounted from",
                    path,
                    current,
                    mode,
                )
            return
        log.warning(
            "%s has mode %o, readable by other accounts, and cannot be tightened (%s): "
            "run chmod %o %s",
            path,
            current,
            exc.strerror,
            mode,
            path,
        )


def private_directory(path: Path) -> None:
    """Create ``path`` (and its missing parents, also 0700) or tighten it to 0700."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    for created in missing:  # mkdir's mode applies the umask, and not to the parents
        _tighten(created, DIRECTORY_MODE)
    _tighten(path, DIRECTORY_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist, else tighten it to 0600.
    Missing parent directories are created 0700; existing ones are left as they are (a key
    file may live in an operator's directory such as /etc/tandem)."""
    missing = [p for p in path.parents if not p.exists()]
    if missing:
        private_directory(path.parent)
    if not path.exists():
        path.touch(mode=FILE_MODE)
    _tighten(path, FILE_MODE)


def private_files_beside(path: Path) -> None:
    """Tighten the files SQLite keeps next to a database (write-ahead log, shared memory)."""
    for suffix in ("-wal", "-shm", "-journal"):
        _tighten(path.with_name(path.name + suffix), FILE_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, a file only the owner may read: created 0600 (whatever the
    umask), or, if it is a regular file already, tightened to 0600 first. For what a command
    writes out about people (a customer's export, a decrypted recording): written with the
    umask's mode it was readable by every account on the machine. Raises OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as file:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # not a pipe or a terminal the operator named
            os.fchmod(fd, FILE_MODE)
        file.write(data)
