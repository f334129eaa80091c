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

KEY_FILE_MAX_BYTES = 64 * 1024
"""Largest key file (audit, secrets) read: a key is under a hundred bytes, so this bounds only
what a wrong path (a disk image) would make the server read, not anything an operator tunes."""


_PART_BYTES = 1 << 20


def read_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``; OSError for anything else, without waiting (a
    FIFO is opened non-blocking, then refused), and for a file over ``max_bytes`` (a wrong path
    naming a disk image is not read into memory)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        # Before open(), which fails on a directory naming the descriptor ("cannot read 3").
        os.close(descriptor)
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    with open(descriptor, "rb", closefd=True) as file:
        if os.fstat(descriptor).st_size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        os.set_blocking(descriptor, True)
        # In parts, not read(max_bytes + 1): a bound of sys.maxsize (a recording, whose size the
        # exporting server bounded) is no size to ask for at once.
        parts: list[bytes] = []
        size = 0
        while part := file.read(_PART_BYTES):
            size += len(part)
            if size > max_bytes:  # grew while read
                raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
            parts.append(part)
        return b"".join(parts)


def read_text(path: Path, max_bytes: int) -> str:
    """:func:`read_file` decoded as UTF-8; UnicodeDecodeError (a ValueError) for a binary file
    or another encoding."""
    return read_file(path, max_bytes).decode("utf-8")
