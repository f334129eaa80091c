"""Checks ``tandem serve`` makes before it serves, so that every bad configuration is one line
(``tandem: …``) and a non-zero exit, never a traceback, and nothing reaches the audit trail of
a server that never served: files it reads (TLS, keys), directories it writes, and the port,
which is bound here and handed to uvicorn."""

from __future__ import annotations

import errno
import fcntl
import importlib.util
import os
import resource
import socket
import ssl
import tempfile

from tandem import audit_backlog, crypto
from tandem.audit import load_or_create_key
from tandem.config import Settings
from tandem.exceptions import ConfigError


def check_files(settings: Settings) -> None:
    """Raise :class:`ConfigError` for a TLS pair that does not load, a data directory that
    cannot be written, an audit or secrets key that cannot be read or created, or an audit
    backlog that cannot be taken up."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or "invalid"
            raise ConfigError(
                f"cannot use the TLS certificate {settings.tls_cert} with the key "
                f"{settings.tls_key}: {str(reason).replace('_', ' ').lower()}"
            ) from None
    if settings.database_url is None or settings.audit_key_file is None:
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=settings.data_dir):
                pass
        except OSError as exc:
            raise ConfigError(
                f"cannot write to the data directory {settings.data_dir}: {exc.strerror}"
            ) from None
    load_or_create_key(settings.audit_key_path)
    crypto.SecretBox(settings.secrets_key_path)
    audit_backlog.check(settings.data_dir, settings.audit_backlog_max_bytes)
    if settings.metrics_port is not None:  # prometheus-client binds it; refuse here instead
        probe = socket.socket(socket.AF_INET6 if ":" in settings.metrics_host else socket.AF_INET)
        try:
            probe.bind((settings.metrics_host, settings.metrics_port))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
                f"{exc.strerror or exc}"
            ) from None
        finally:
            probe.close()


RUNTIME_MODULES = ("uvloop", "httptools")
"""The event loop and HTTP parser the relay runs on (``uvicorn[standard]``, issue 17): without
them it relays about a fifth fewer frames a second, so a server that lacks them does not start."""

FILES_PER_SESSION = 2
"""Open files a live session holds: the customer's socket and the agent's (a supervisor: 3)."""

FILES_SPARE = 64
"""Files a process needs besides sessions: the database, logs, the listening socket, Redis."""


SERVE_LOCK = "tandem.sqlite3.serving"
"""File in the data directory that a ``tandem serve`` on SQLite holds locked while it runs."""


def lock_sqlite(settings: Settings) -> int | None:
    """On SQLite, lock the data directory for this server (the descriptor to keep open while it
    serves; closing it, or the process ending, releases it); None on PostgreSQL. A second
    ``tandem serve`` on the same SQLite file is a ConfigError: the two would each hold their own
    sessions, and each take the other's for a stopped server's (docs/scale-out.md: several
    processes share PostgreSQL). Commands such as ``tandem user add`` do not take the lock."""
    if settings.database_url is not None:
        return None
    path = settings.data_dir / SERVE_LOCK
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(descriptor)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise ConfigError(f"cannot lock {path}: {exc.strerror}") from None
        raise ConfigError(
            f"another tandem serve is using the database in {settings.data_dir}: stop it first "
            "(several servers share a PostgreSQL database, docs/scale-out.md)"
        ) from None
    return descriptor


def check_runtime() -> None:
    """Raise :class:`ConfigError` when uvloop or httptools is missing."""
    missing = [name for name in RUNTIME_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: install "
            "Tandem with its locked dependencies (requirements/runtime.txt, uvicorn[standard])"
        )


def raise_file_limit(settings: Settings) -> str | None:
    """Raise this process's open-file limit (``RLIMIT_NOFILE``) towards what ``max_sessions``
    needs, up to the hard limit; a warning when the limit still caps sessions below it
    (docs/deployment.md: ``LimitNOFILE=`` for systemd, ``ulimit -n``)."""
    needed = settings.max_sessions * FILES_PER_SESSION + FILES_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    sessions = max(0, (soft - FILES_SPARE) // FILES_PER_SESSION)
    return (
        f"the open-file limit ({soft}) caps this process near {sessions} live sessions, fewer "
        f"than max_sessions ({settings.max_sessions}); raise it (systemd LimitNOFILE={needed}, "
        f"or ulimit -n {needed}) or lower TANDEM_MAX_SESSIONS"
    )


def bind(settings: Settings) -> socket.socket:
    """The listening socket on ``settings.host``/``port``; :class:`ConfigError` if it cannot
    be had (in use, not an address of this machine, a privileged port)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock
