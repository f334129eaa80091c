"""Reading the files an operator names (a policy, keys, advisories, checkpoints, recordings).

A path given on the command line or in ``TANDEM_*`` may name anything: a directory, a FIFO (whose
read waits for a writer forever), a device. Only regular files are read; anything else is an
:class:`OSError` whose ``strerror`` says so, which every caller already turns into its one-line
ConfigError.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def read_file(path: Path) -> bytes:
    """The bytes of the regular file ``path``; OSError for anything else, without waiting (a
    FIFO is opened non-blocking, then refused)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with open(descriptor, "rb", closefd=True) as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(descriptor, True)
        return file.read()


def read_text(path: Path) -> str:
    """:func:`read_file` decoded as UTF-8; UnicodeDecodeError (a ValueError) for a binary file
    or another encoding."""
    return read_file(path).decode("utf-8")
