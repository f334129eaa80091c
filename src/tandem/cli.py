"""The `tandem` command (also `python -m tandem`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import json
import logging
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperArgument, TyperGroup, TyperOption

from tandem import __version__, auth, crypto, secrets_rotation, site_verification, startup
from tandem.access import Grant
from tandem.audit import (
    Anchor,
    AuditLog,
    AuditRecord,
    Checkpoint,
    Entry,
    Evidence,
    Verdict,
    check_key_for_trail,
    load_or_create_key,
    make_checkpoint,
    verify,
)
from tandem.config import (
    PLAIN_HTTP_NOTE,
    PROXY_NOTE,
    Settings,
    normalize_origin,
    public_origin_warning,
)
from tandem.directory import Directory, offline, operator
from tandem.exceptions import (
    AuditTrailDamaged,
    ConfigError,
    ConflictError,
    NotFoundError,
    StorageError,
    TandemError,
)
from tandem.files import KEY_FILE_MAX_BYTES, read_file, read_text
from tandem.policy import load_policy
from tandem.private_files import write_private
from tandem.reconcile import NEVER, reconcile
from tandem.storage import open_storage
from tandem.storage.base import (
    DEFAULT_ORG,
    SET_ASIDE_BY_BINDING,
    Inventory,
    OrgRecord,
    SiteRecord,
    UserRecord,
)
from tandem.training import Standing, Training

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

# The server's own modules (uvicorn, Starlette, structlog's set-up, the app) are imported by the
# commands that serve (`serve`, and `server_config` for the tests): the others start without them.


class _Commands(TyperGroup):
    """The ``tandem`` command group: a mistake in the command line itself (an unknown option,
    a value of the wrong type, a missing argument) is one line, ``tandem: …``, and exit 2, as
    every other refusal of a command is; click printed its usage and a hint around it, four
    lines. Help (``--help``, a group without a command) is printed whole."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _name_values(self)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            names: list[str] = []
            context = exc.ctx
            while context is not None and context.parent is not None:
                names.insert(0, context.info_name or "")
                context = context.parent
            command = " ".join(["tandem", *names, "--help"])
            typer.echo(f"tandem: {exc.format_message().rstrip('.')} ({command})", err=True)
            sys.exit(exc.exit_code)
        except ClickException as exc:
            typer.echo(f"tandem: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:  # Ctrl-D at a prompt
            typer.echo("tandem: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


# Where an option's last word does not name its value.
_VALUE_NAMES = {
    "--after": "SEQ",
    "--by": "KIND",
    "--checkpoint": "FILE",
    "--copy-to": "DIR",
    "--out": "FILE",
    "--relay": "ORIGIN",
    "--shutdown-timeout": "SECONDS",
    "--since": "DATE",
    "--src": "PATH",
    "--to": "URL",
}


def _no_type(ctx: object) -> None:
    return None


def _name_values(command: Any) -> None:
    """Each option's value is named in help by its option's last word (``--data-dir DIR``,
    ``--public-origin ORIGIN``, ``--port PORT``) or as :data:`_VALUE_NAMES` says, not by its
    Python type (``<Path>``, ``<list[str]>``, which read as code); choices keep their list. An
    argument is named by its name (``tandem hold lift KIND TARGET``)."""
    for param in command.params:
        if (
            isinstance(param, TyperOption)
            and param.metavar is None
            and not param.is_flag
            and not param.count
            and param.name
            and not param.type_descriptor.is_choice
        ):
            flag = max(param.opts, key=len)
            param.metavar = _VALUE_NAMES.get(flag, flag.rsplit("-", 1)[-1].upper())
        elif isinstance(param, TyperArgument) and param.metavar is None and param.name:
            param.metavar = param.name.upper()
            # typer prints an argument's Python type beside its name whatever its metavar
            setattr(param, "display_type_rich", _no_type)  # noqa: B010 (an instance's own)
    for sub in getattr(command, "commands", {}).values():
        _name_values(sub)


def _typer(**options: Any) -> typer.Typer:
    """A command group with plain help: no rich markup, which took every ``[env …; default …]``
    of the options' help for a markup tag and printed nothing of it."""
    return typer.Typer(rich_markup_mode=None, **options)


app = _typer(
    cls=_Commands,
    help="Tandem: self-hosted, security-first co-browsing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _group(name: str, help_text: str) -> typer.Typer:
    """A command group ``tandem NAME …``, its help shown when it is given no command."""
    group = _typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


user_app = _group("user", "Manage agent accounts.")
audit_app = _group("audit", "Check and export the tamper-evident audit trail.")
recording_app = _group("recording", "Recordings exported from the console.")
org_app = _group("org", "Organisations and their teams.")
site_app = _group("site", "Websites whose pages may start sessions.")
db_app = _group("db", "The database: upgrade its schema, move an installation to PostgreSQL.")
compliance_app = _group("compliance", "Check this installation against GDPR, HIPAA or PCI DSS.")
security_app = _group("security", "Known vulnerabilities in this version and what it ships (SBOM).")
subject_app = _group(
    "subject", "Data subject requests: find, export or erase what concerns one customer."
)
hold_app = _group(
    "hold", "Legal holds: keep a recording or a customer's data from purge and erasure."
)
training_app = _group(
    "training",
    "Training before live sessions: policy acknowledgements and practice (docs/training.md).",
)
secrets_app = _group(
    "secrets",
    "The secrets key (secrets.key): stage, rotate and retire its keys (docs/operations.md).",
)


def _path(text: str) -> Path:
    """A file or directory named on the command line: an empty one is refused, not taken for
    the current directory (``--data-dir ""`` made a whole installation wherever the command ran,
    ``--copy-to ""`` wrote the console there)."""
    if not text.strip():
        raise typer.BadParameter("is empty: name a file or directory")
    return Path(text)


def _org_id(text: str) -> str:
    """An organisation's id as ``--org`` names it, checked like ``tandem org add`` checks it (an
    empty one made a grant of no organisation, and a traceback)."""
    try:
        return auth.validate_name(text, "organisation id")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


OrgOption = Annotated[
    str, typer.Option("--org", help="The organisation (its short id).", parser=_org_id)
]

AuditKey = Annotated[
    Path | None,
    typer.Option(
        "--audit-key",
        parser=_path,
        help="The anchoring key [env TANDEM_AUDIT_KEY; default <data dir>/audit.key].",
    ),
]

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        parser=_path,
        help="Directory holding the database [env TANDEM_DATA_DIR; default ./data].",
    ),
]

Init = Annotated[
    bool,
    typer.Option(
        "--init",
        help="Create a new, empty Tandem database if the data directory holds none (without it, "
        "a mistyped --data-dir is an error, not a new installation).",
    ),
]


def _database(settings: Settings, *, init: bool | None) -> bool:
    """Check the data directory before anything opens it: a file there is an error, and so is a
    directory without a Tandem database unless ``init`` (a command with ``--init``: it will be
    created; None: the command has no ``--init``). True when a new database will be created."""
    data_dir = settings.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(
            f"the data directory {data_dir} is a file, not a directory: check --data-dir "
            "(or TANDEM_DATA_DIR)"
        )
    if settings.database_url or settings.database_path.is_file():
        return False
    if init:
        return True
    how = (
        "add --init to create a new one there"
        if init is not None
        else "`tandem serve` or a command with --init (e.g. tandem org add) creates one"
    )
    raise ConfigError(
        f"no Tandem database in {data_dir} (no {settings.database_path.name}): check --data-dir "
        f"(or TANDEM_DATA_DIR), or {how}"
    )


def _load(data_dir: Path | None, *, init: bool | None = None, **overrides: Any) -> Settings:
    """The settings for a command on the database, after :func:`_database`'s checks."""
    settings = Settings.load(data_dir=data_dir, **overrides)
    _database(settings, init=init)
    return settings


def _created(settings: Settings, existed: bool) -> None:
    """Say, once a command succeeded, that it made a new database (``--init``)."""
    if not existed and settings.database_path.is_file() and not settings.database_url:
        typer.echo(f"Created a new Tandem database at {settings.database_path}.", err=True)


_T = TypeVar("_T")


def _run(work: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(work)``, without asyncpg's orphaned-future noise: a connection it was
    opening (a pool's, or the one that sends a cancel request after a statement timed out) to a
    database that stopped answering, abandoned at the timeout, fails afterwards with nobody
    waiting, and asyncio would print "Future exception was never retrieved" and a traceback
    beside the command's own one line about that database."""

    async def quietly() -> _T:
        loop = asyncio.get_running_loop()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            if (
                context.get("message") == "Future exception was never retrieved"
                and type(exc) is ConnectionError
                and str(exc) == "unexpected connection_lost() call"
            ):
                logging.getLogger("tandem.cli").debug("asyncpg: %s", exc)
                return
            loop.default_exception_handler(context)

        loop.set_exception_handler(handle)
        return await work

    return asyncio.run(quietly())


def _fail(error: TandemError | str) -> typer.Exit:
    typer.echo(f"tandem: {error}", err=True)
    return typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tandem {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Tandem: self-hosted, security-first co-browsing."""


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on [env TANDEM_HOST; default 127.0.0.1]."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port [env TANDEM_PORT; default 8000].")
    ] = None,
    data_dir: DataDir = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            help="Another site (https://shop.example) whose pages may start sessions; repeatable "
            "[env TANDEM_ALLOW_ORIGINS, comma separated].",
        ),
    ] = None,
    console_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--console-origin",
            help="Another origin (https://console.bank.example) that hosts the agent console "
            "(`tandem console --copy-to`); repeatable [env TANDEM_CONSOLE_ORIGINS, comma "
            "separated].",
        ),
    ] = None,
    public_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--public-origin",
            help="The origin browsers reach this server at (https://tandem.example.com); "
            "requests addressed to any other Host are refused (421); repeatable "
            "[env TANDEM_PUBLIC_ORIGINS, comma separated].",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            parser=_path, help="PEM certificate chain: serve HTTPS/WSS [env TANDEM_TLS_CERT]."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(parser=_path, help="PEM private key for --tls-cert [env TANDEM_TLS_KEY]."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            parser=_path,
            help="The organisation's masking policy (JSON, docs/privacy.md); it can only add "
            "restrictions to a site's policy [env TANDEM_POLICY].",
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="Address of a reverse proxy whose X-Forwarded-* headers are trusted; "
            "repeatable [env TANDEM_TRUSTED_PROXIES].",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL DSN (postgresql://user@host/db), shared by several servers "
            "(docs/scale-out.md) [env TANDEM_DATABASE_URL; default: SQLite in the data dir].",
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Redis URL (redis://host:6379/0) through which several servers carry each "
            "other's sessions (docs/scale-out.md) [env TANDEM_REDIS_URL; needs --database-url].",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            help="Log lines as 'console' (readable) or 'json' (one object a line) "
            "[env TANDEM_LOG_FORMAT; default console].",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics on this port of 127.0.0.1 (TANDEM_METRICS_HOST) "
            "instead of /metrics behind TANDEM_METRICS_TOKEN [env TANDEM_METRICS_PORT].",
        ),
    ] = None,
    shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a stop (SIGTERM) may take to tell every socket, end sessions, flush "
            "recordings and anchor the audit trail [env TANDEM_SHUTDOWN_TIMEOUT; default 15].",
        ),
    ] = None,
) -> None:
    """Run the server: customer SDK, agent console, demo shop."""
    serving: int | None = None  # the data directory's lock, on SQLite (startup.lock_sqlite)
    listening: socket.socket | None = None
    before_serving = _stop_at_once_before_serving()  # until uvicorn takes the signals
    try:
        settings = Settings.load(
            host=host,
            port=port,
            data_dir=data_dir,
            allow_origins=tuple(allow_origin or ()),
            console_origins=tuple(console_origin or ()),
            public_origins=tuple(public_origin or ()),
            tls_cert=tls_cert,
            tls_key=tls_key,
            trusted_proxies=tuple(trusted_proxy or ()),
            policy_file=policy,
            database_url=database_url,
            redis_url=redis_url,
            log_format=log_format,
            metrics_port=metrics_port,
            shutdown_timeout_seconds=shutdown_timeout,
        )
        if settings.policy_file:
            # A bad policy stops here, with the field named.
            load_policy(settings.policy_file, settings.max_input_file_bytes)
        if settings.redis_url:
            _run(_check_redis(settings.redis_url, settings.redis_timeout_seconds))
        created = _database(settings, init=True)
        # The port before the data directory: a port in use (or an address not of this
        # machine) made a new, empty installation where a mistyped --data-dir pointed.
        listening = startup.bind(settings)
        serving = startup.lock_sqlite(settings)
        users = _run(_count_users(settings))
        startup.check_runtime()
        startup.check_files(settings)
        file_limit_warning = startup.raise_file_limit(settings)
    except TandemError as exc:
        if serving is not None:
            os.close(serving)
        if listening is not None:
            listening.close()
        raise _fail(exc) from None
    finally:
        _serving(before_serving)  # uvicorn's graceful stop from now on (create_app: no I/O)
    try:
        from tandem import logs
        from tandem.server.app import create_app
        from tandem.server.websocket_protocol import BannerServer

        logs.configure(settings.log_format)  # type: ignore[arg-type]
        if file_limit_warning:  # a log line, so that it is JSON under --log-format json
            logging.getLogger("tandem.server").warning(file_limit_warning)
        exposure = settings.exposure()  # the database's note is read once it is open (app.py)
        if exposure:
            logging.getLogger("tandem.server").warning(public_origin_warning(exposure))
        served = create_app(settings)
        server = BannerServer(
            server_config(served, settings, log_level="info"),
            served,
            settings.shutdown_timeout_seconds,
            lambda: _banner(settings, users, created),
            hurried_seconds=settings.hurried_stop_seconds,
            reserve_seconds=settings.shutdown_reserve_seconds,
        )
        server.run(sockets=[listening])
    finally:
        if serving is not None:
            os.close(serving)  # the lock goes with it
    if not server.started:  # the application did not start (logged): not a clean exit
        raise typer.Exit(code=3)


def _stop_at_once_before_serving() -> dict[int, Any]:
    """Until uvicorn serves (and takes the signals for its graceful stop), SIGTERM and Ctrl-C
    end the start at once, with one line: SIGTERM killed the process with nothing said, and
    Ctrl-C waited out the database's timeouts (tens of seconds on a frozen database: asyncio's
    cancellation waits for the connections' closes) before failing with the database's error.
    Nothing is lost by not waiting: nothing was served, and a migration under way is one
    transaction, rolled back by the database when the connection goes with the process
    (SQLite's journal does the same at the next open). The previous handlers, for
    :func:`_serving`."""
    import signal
    import threading

    def stop(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        # Written directly (a signal handler may interrupt a write to stderr), then the exit
        # itself, without unwinding: the waits for a frozen database are what it must skip.
        os.write(
            2,
            f"tandem: stopped during start-up ({name}), before serving: nothing was served; "
            "a database migration under way is rolled back (it is one transaction)\n".encode(),
        )
        os._exit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return {}  # signals reach the main thread only (as uvicorn's capture_signals)
    return {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}


def _serving(before: dict[int, Any]) -> None:
    """The handlers :func:`_stop_at_once_before_serving` replaced, back (uvicorn saves them,
    takes the signals while it serves, and puts them back when it stops)."""
    import signal

    for sig, handler in before.items():
        signal.signal(sig, handler)


def _banner(settings: Settings, users: int, created: bool = False) -> None:
    from tandem.server.app import SDK_FILE

    listening = f"{'https' if settings.tls else 'http'}://{settings.host}:{settings.port}"
    if settings.public_origins:  # the listening address itself would be refused (421)
        base = settings.public_origins[0]
        typer.echo(
            f"Tandem {__version__} on {listening}, public at {', '.join(settings.public_origins)}"
        )
    else:
        base = listening
        typer.echo(f"Tandem {__version__} on {base}")
    if created:
        typer.echo(f"  new database   {settings.database_path} (there was none: created now)")
    typer.echo(f"  demo shop      {base}/demo/")
    typer.echo(f"  agent console  {base}/console/")
    typer.echo(f"  customer SDK   {base}/sdk/tandem.js")
    if not SDK_FILE.is_file():
        typer.echo("  warning: the SDK is not built; `make run` builds it.", err=True)
    if users == 0:
        typer.echo("No agent account yet. Create one in another terminal:")
        typer.echo(f"  .venv/bin/tandem user add alice --role agent --data-dir {settings.data_dir}")
        typer.echo("  (.venv/bin/tandem, or plain tandem in an activated virtualenv)")
        typer.echo(
            "  (the password is temporary: the account chooses its own and sets up an "
            "authenticator at first sign-in;"
        )
        typer.echo(
            "   --own-account keeps it and prints the authenticator here; --no-mfa only for a "
            "local demo)"
        )
        if settings.database_url:
            typer.echo("  with TANDEM_DATABASE_URL set to this server's database URL")


def server_config(asgi_app: ASGIApp, settings: Settings, log_level: str) -> uvicorn.Config:
    """The uvicorn configuration Tandem runs under (also used by the tests)."""
    import uvicorn

    from tandem import logs
    from tandem.server.http_protocol import http_protocol
    from tandem.server.websocket_protocol import TandemWebSocketProtocol

    logs.redact_access_log()
    return uvicorn.Config(
        asgi_app,
        host=settings.host,
        port=settings.port,
        ws=TandemWebSocketProtocol,
        loop="uvloop",  # startup.check_runtime: required, not "auto"
        # httptools, with a deadline and a bound on the headers
        http=http_protocol(
            settings.http_request_timeout_seconds,
            settings.http_max_header_bytes,
            settings.socket_send_timeout_seconds,
        ),
        ws_max_size=max(settings.max_payload_bytes, settings.max_control_bytes) + 64 * 1024,
        ws_per_message_deflate=False,  # the SDK compresses before it encrypts
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        server_header=False,
        log_level=log_level,
        log_config=None,  # tandem.logs configures logging (the access log without queries)
    )


async def _count_users(settings: Settings) -> int:
    """The number of accounts, after checking the database against the settings (an origin
    of ``--allow-origin`` held by another organisation stops the start here, in one line)."""
    from tandem.directory import check_allowed_origins

    storage = await open_storage(settings)
    try:
        await check_allowed_origins(storage, settings.allow_origins)
        await check_key_for_trail(storage, settings.audit_key_path)
        return await storage.count_users()
    except StorageError as exc:  # a database that stopped answering (or failed) after opening
        if settings.database_url:
            from tandem.storage.sql import redact_dsn

            where = redact_dsn(settings.database_url)
        else:
            where = str(settings.database_path)
        raise ConfigError(
            f"cannot check the database at {where} before serving: {exc}: check that it is "
            "running, reachable from here and not overloaded, then start again"
        ) from None
    finally:
        await storage.close()


async def _check_redis(url: str, timeout: float) -> None:
    """Reach Redis before serving: a clear error here, not a failed start-up later."""
    from tandem.fanout.redis import RedisFanout

    fanout = await RedisFanout.connect(url, timeout=timeout)
    await fanout.close()


def _read_password(password_stdin: bool) -> str:
    if password_stdin or not sys.stdin.isatty():
        try:
            line = sys.stdin.readline()
        except UnicodeDecodeError:  # a strict decoder; a lenient one gives surrogates, refused
            raise _fail("password is not UTF-8 text: type it in UTF-8") from None
        return line.rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Username: lower-case letters, digits, . _ -")],
    role: Annotated[str, typer.Option(help="One of: agent, supervisor, auditor, admin.")] = "agent",
    display_name: Annotated[
        str | None, typer.Option(help="Name the customer sees (default: the username).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    no_mfa: Annotated[
        bool,
        typer.Option("--no-mfa", help="No second factor: for local demos only (warned loudly)."),
    ] = False,
    own_account: Annotated[
        bool,
        typer.Option(
            "--own-account",
            help="The account is yours, the operator's (the server's first admin): it keeps "
            "the password you type, and its authenticator secret and recovery codes are "
            "printed here, once. Without it the password is temporary and the owner sets up "
            "the authenticator at first sign-in.",
        ),
    ] = False,
    org: OrgOption = DEFAULT_ORG,
    team: Annotated[
        list[str] | None,
        typer.Option(
            "--team",
            help="A team of the organisation to join; repeatable (default: agents and "
            "supervisors join the default team 'support' where it exists).",
        ),
    ] = None,
    data_dir: DataDir = None,
    init: Init = False,
) -> None:
    """Create an account for its owner: the password typed here is temporary (tell it to the
    owner another way), so the account's first sign-in chooses its own password (not the same
    one) and then sets up its authenticator (TOTP) second factor in the console: nobody else
    ever sees its secret. With --own-account (your own account, e.g. the server's first admin)
    the password stays and the authenticator secret and recovery codes are printed once. The
    password is read from stdin when it is not a terminal, else asked for twice. Weak passwords
    are refused. Nothing is created when anything is wrong (organisation, team, name,
    password)."""
    try:
        settings = _load(data_dir, init=init)
        existed = settings.database_path.is_file()
        auth.validate_username(name)
        auth.validate_role(role)
        _run(_check_new_user(settings, name, org, team))  # before asking the password
        password = _read_password(password_stdin)
        auth.check_password_strength(password, name)
        enrolment = _run(
            _add_user(settings, name, password, role, display_name, no_mfa, own_account, org, team)
        )
    except TandemError as exc:
        raise _fail(exc) from None
    _created(settings, existed)
    typer.echo(f"Created {role} {name!r} in organisation {org!r}.")
    if not own_account:
        typer.echo(
            "Its password is temporary: tell it to its owner another way (phone, in person). "
            "At the first sign-in in the console the owner chooses a new password"
            + (
                "."
                if no_mfa
                else ", then sets up two-step sign-in with an authenticator app (its secret "
                "and recovery codes are shown to the owner only)."
            )
        )
    if no_mfa:
        typer.echo(
            f"WARNING: {name!r} signs in with a password alone (--no-mfa). "
            "Use this only for a local demo, never in production.",
            err=True,
        )
        return
    if enrolment is None:
        return
    typer.echo("Second factor: add this account to an authenticator app (TOTP), e.g. by QR code:")
    typer.echo(f"  {enrolment.uri}")
    typer.echo(f"  secret: {enrolment.secret}")
    typer.echo("Recovery codes (each works once instead of a code; shown only now, keep safe):")
    for code in enrolment.recovery_codes:
        typer.echo(f"  {code}")


async def _org_of(directory: Directory, org: str) -> OrgRecord:
    """The organisation ``org``, or NotFoundError naming it."""
    record = await directory.storage.get_org(Grant.operator(org))
    if record is None:
        raise NotFoundError(f"no organisation {org!r} (tandem org list shows them)")
    return record


async def _check_teams(directory: Directory, org: str, teams: list[str] | None) -> None:
    known = await directory.storage.list_teams(Grant.operator(org))
    for team in teams or ():
        # A malformed name first: "tandem org add-team default  creates it" offered a command
        # that cannot work.
        auth.validate_name(team, "team name")
        if team not in known:
            raise NotFoundError(
                f"no team {team!r} in organisation {org!r} (tandem org add-team {org} {team} "
                "creates it); nothing was created"
            )


async def _check_new_user(settings: Settings, name: str, org: str, teams: list[str] | None) -> None:
    """What `user add` can check before it asks for a password: the organisation, its teams,
    the name."""
    async with offline(settings) as directory:
        await _org_of(directory, org)
        await _check_teams(directory, org, teams)
        if name in auth.RESERVED_USERNAMES or await directory.storage.get_user(name) is not None:
            raise auth.name_unavailable(name)


async def _add_user(
    settings: Settings,
    name: str,
    password: str,
    role: str,
    display_name: str | None,
    no_mfa: bool,
    own_account: bool,
    org: str,
    teams: list[str] | None,
) -> auth.Enrolment | None:
    async with offline(settings) as directory:
        _, enrolment = await directory.add_user(
            operator(org),
            name,
            password,
            role,
            display_name,
            tuple(teams) if teams is not None else None,
            enrol_now=own_account and not no_mfa,
            mfa_exempt=no_mfa,
            change_required=not own_account,
        )
        return enrolment


NameArgument = Annotated[str, typer.Argument(help="The account's username.")]


def _two_step(user: UserRecord) -> str:
    if user.totp_secret:
        return "on"
    return "off (--no-mfa)" if user.mfa_exempt else "set up at next sign-in"


@user_app.command("list")
def user_list(org: OrgOption = DEFAULT_ORG, data_dir: DataDir = None) -> None:
    """The organisation's accounts: username, role, display name, teams, two-step sign-in and
    whether the account is disabled (tab separated, after a header line)."""
    lines: list[str] = []

    async def work(directory: Directory) -> None:
        await _org_of(directory, org)
        for user in await directory.list_users(operator(org)):
            state = "disabled" if user.disabled else "active"
            lines.append(
                f"{user.username}\t{user.role}\t{user.display_name}\t"
                f"{','.join(user.teams) or '-'}\t{_two_step(user)}\t{state}"
            )

    _run_directory(data_dir, work)
    typer.echo("USERNAME\tROLE\tNAME\tTEAMS\tTWO-STEP\tSTATE")
    for line in lines:
        typer.echo(line)


@user_app.command("show")
def user_show(name: NameArgument, org: OrgOption = DEFAULT_ORG, data_dir: DataDir = None) -> None:
    """One account: its role, teams, second factor, single sign-on binding and state."""
    found: list[UserRecord] = []

    async def work(directory: Directory) -> None:
        await _org_of(directory, org)
        found.append(await directory.get_user(operator(org), name))

    lifetime: list[float] = []

    async def work_configured(settings: Settings, directory: Directory) -> None:
        lifetime.append(settings.temporary_password_seconds)
        lifetime.append(directory.clock())  # the time the expiry is judged at
        await work(directory)

    _run_configured(data_dir, work_configured)
    user = found[0]
    created = datetime.fromtimestamp(user.created_at, UTC).isoformat(timespec="minutes")
    for label, value in (
        ("username", user.username),
        ("organisation", user.org_id),
        ("display name", user.display_name),
        ("role", user.role),
        ("teams", ", ".join(user.teams) or "none"),
        ("two-step sign-in", _two_step(user)),
        ("recovery codes left", str(len(user.recovery_codes))),
        ("single sign-on", "bound" if user.oidc_identity else "not bound"),
        ("password", _password_state(user, lifetime[0], lifetime[1])),
        ("state", "disabled" if user.disabled else "active"),
        ("created", created),
    ):
        typer.echo(f"{label + ':':<21}{value}")


def _password_state(user: UserRecord, lifetime: float, now: float) -> str:
    """``user show``'s password line: ``set``, or a temporary password's chooser, when it was
    set and when it expires (temporary_password_seconds), or that it has (as of ``now``)."""
    if not user.password_change_required:
        return "set"
    by = user.password_set_by
    chooser = (
        "the operator (cli)"
        if by == "cli"
        else "nobody: the owner's own, set aside when bound to single sign-on"
        if by == SET_ASIDE_BY_BINDING
        else (by or "unknown")
    )
    set_at = user.password_set_at if user.password_set_at is not None else user.created_at
    ends = set_at + lifetime
    expiry = (
        "expired: give a new one (tandem user passwd)"
        if auth.temporary_password_expired(user, now, lifetime)
        else f"expires {_minute(ends)}"
    )
    return (
        f"temporary, chosen by {chooser} at {_minute(set_at)}; {expiry}; must be changed at "
        "next sign-in"
    )


def _minute(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="minutes")


@user_app.command("disable")
def user_disable(
    name: NameArgument, org: OrgOption = DEFAULT_ORG, data_dir: DataDir = None
) -> None:
    """Disable an account: its sign-ins end now (open console sockets close at their next
    periodic check, agent_reauth_seconds in docs/configuration.md) and it cannot sign in until
    enabled again (its data stays). An organisation keeps at least one enabled admin."""
    was_disabled: list[bool] = []

    async def work(directory: Directory) -> None:
        await _org_of(directory, org)
        was_disabled.append((await directory.get_user(operator(org), name)).disabled)
        await directory.set_disabled(operator(org), name, disabled=True)

    _run_directory(data_dir, work)
    if was_disabled[0]:
        typer.echo(f"{name!r} was already disabled: nothing changed.")
        return
    typer.echo(f"Disabled {name!r}: its sign-ins have ended (tandem user enable {name} undoes it).")


@user_app.command("enable")
def user_enable(name: NameArgument, org: OrgOption = DEFAULT_ORG, data_dir: DataDir = None) -> None:
    """Enable a disabled account again."""
    was_disabled: list[bool] = []

    async def work(directory: Directory) -> None:
        await _org_of(directory, org)
        was_disabled.append((await directory.get_user(operator(org), name)).disabled)
        await directory.set_disabled(operator(org), name, disabled=False)

    _run_directory(data_dir, work)
    if not was_disabled[0]:
        typer.echo(f"{name!r} was already enabled: nothing changed.")
        return
    typer.echo(f"Enabled {name!r}: it can sign in again.")


@user_app.command("remove")
def user_remove(
    name: NameArgument,
    org: OrgOption = DEFAULT_ORG,
    yes: Annotated[bool, typer.Option("--yes", help="Do it (there is no undo).")] = False,
    data_dir: DataDir = None,
) -> None:
    """Delete an account for good (its audit records stay). `tandem user disable` keeps it."""
    if not yes:
        raise _fail(f"removing {name!r} cannot be undone: add --yes (or disable it instead)")

    async def work(directory: Directory) -> None:
        await _org_of(directory, org)
        await directory.delete_user(operator(org), name)

    _run_directory(data_dir, work)
    typer.echo(f"Removed {name!r} from {org!r}.")


@user_app.command("reset-mfa")
def user_reset_mfa(
    name: NameArgument, org: OrgOption = DEFAULT_ORG, data_dir: DataDir = None
) -> None:
    """Remove an account's authenticator and recovery codes (a lost phone): its sign-ins end,
    and it sets up a new authenticator at its next sign-in."""

    exempt: list[bool] = []

    async def work(directory: Directory) -> None:
        await _org_of(directory, org)
        exempt.append((await directory.reset_second_factor(operator(org), name)).mfa_exempt)

    _run_directory(data_dir, work)
    if exempt[0]:  # it was told "sets up a new one", and went on without any
        typer.echo(
            f"{name!r} was created with --no-mfa: it had no authenticator and still signs in "
            "with a password alone (its sign-ins have ended). To require one, remove it and "
            "add it again without --no-mfa."
        )
        return
    typer.echo(
        f"Removed the authenticator of {name!r}; its sign-ins have ended. It sets up a new one "
        "at its next sign-in."
    )


@user_app.command("passwd")
def user_passwd(
    name: NameArgument,
    org: OrgOption = DEFAULT_ORG,
    temporary: Annotated[
        bool,
        typer.Option(
            "--temporary/--lasting",
            help="Temporary (the default): the user must choose a new password at the next "
            "sign-in, within temporary_password_seconds. --lasting: it stays the account's "
            "password (your own account: you typed someone else's otherwise).",
        ),
    ] = True,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Set an account's password (read like `user add` does) and end its sign-ins. The password
    is temporary unless --lasting: you are typing someone else's password, which its owner
    replaces at the next sign-in, as after an admin's reset. Agents change their own in the
    console (Security)."""

    async def exists(directory: Directory) -> None:
        await _org_of(directory, org)
        await directory.get_user(operator(org), name)

    _run_directory(data_dir, exists)  # before asking for a password
    try:
        password = _read_password(password_stdin)
    except TandemError as exc:
        raise _fail(exc) from None

    async def run(directory: Directory) -> None:
        await directory.reset_password(operator(org), name, password, change_required=temporary)

    _run_directory(data_dir, run)
    typer.echo(
        f"New password set for {name!r}"
        + (
            ": it is temporary and must be changed at the next sign-in."
            if temporary
            else ": it stays the account's password (--lasting)."
        )
        + " Its sign-ins have ended."
    )


@user_app.command("sso")
def user_sso(
    name: Annotated[str, typer.Argument(help="The account.")],
    subject: Annotated[
        str | None,
        typer.Argument(help="Its subject (sub) at the organisation's identity provider."),
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Unbind the account.")] = False,
    org: OrgOption = DEFAULT_ORG,
    data_dir: DataDir = None,
) -> None:
    """Bind an account to its user at the organisation's identity provider (the only way for
    auditor accounts: an admin cannot bind those)."""
    if (subject is None) != remove:
        raise _fail("give the subject, or --remove")

    async def run(directory: Directory) -> None:
        await directory.bind_sso_identity(operator(org), name, subject)

    _run_directory(data_dir, run)
    typer.echo(f"Unbound {name!r}." if remove else f"Bound {name!r} to subject {subject!r}.")


@org_app.command("add")
def org_add(
    org_id: Annotated[str, typer.Argument(help="Short id: lower-case letters, digits, . _ -")],
    name: Annotated[str, typer.Option(help="Display name, e.g. 'Acme Bank'.")],
    team: Annotated[
        list[str] | None, typer.Option("--team", help="Create this team too; repeatable.")
    ] = None,
    data_dir: DataDir = None,
    init: Init = False,
) -> None:
    """Create an organisation. Its admin (`tandem user add NAME --org ID --role admin`) runs it
    from there: users, teams, sites and policies (docs/administration.md)."""
    teams = list(dict.fromkeys(team or ()))

    async def run(directory: Directory) -> None:
        auth.validate_name(org_id, "organisation id")
        for each in teams:  # every name checked before anything is written
            auth.validate_name(each, "team name")
        if await directory.storage.get_org(Grant.operator(org_id)) is not None:
            raise ConflictError(f"an organisation {org_id!r} already exists")
        await directory.add_org(org_id, name)
        for each in teams:
            await directory.add_team(operator(org_id), each)

    _run_directory(data_dir, run, init=init)
    typer.echo(
        f"Created organisation {org_id!r}" + (f" with teams {', '.join(teams)}." if teams else ".")
    )


@org_app.command("add-team")
def org_add_team(
    org_id: Annotated[str, typer.Argument(help="The organisation.")],
    team: Annotated[str, typer.Argument(help="The new team's name.")],
    data_dir: DataDir = None,
) -> None:
    """Create a team in an organisation."""

    async def run(directory: Directory) -> None:
        await _org_of(directory, org_id)
        await directory.add_team(operator(org_id), team)

    _run_directory(data_dir, run)
    typer.echo(f"Created team {team!r} in {org_id!r}.")


@org_app.command("list")
def org_list(data_dir: DataDir = None) -> None:
    """Every organisation: id, name, accounts, teams, sites (tab separated, after a header)."""
    lines: list[str] = []

    async def run(directory: Directory) -> None:
        for org in await directory.storage.all_orgs():
            grant = Grant.operator(org.org_id)
            users = await directory.storage.list_users(grant)
            teams = await directory.storage.list_teams(grant)
            sites = await directory.storage.list_sites(grant)
            lines.append(f"{org.org_id}\t{org.name}\t{len(users)}\t{len(teams)}\t{len(sites)}")

    _run_directory(data_dir, run)
    typer.echo("ORG\tNAME\tACCOUNTS\tTEAMS\tSITES")
    for line in lines:
        typer.echo(line)


@org_app.command("show")
def org_show(
    org_id: Annotated[str, typer.Argument(help="The organisation.")], data_dir: DataDir = None
) -> None:
    """One organisation: its name, retention, recording key, single sign-on, teams, sites and
    accounts by role."""
    shown: list[tuple[str, str]] = []

    async def run(directory: Directory) -> None:
        org = await _org_of(directory, org_id)
        actor = operator(org_id)
        users = await directory.list_users(actor)
        roles = sorted({u.role for u in users})
        by_role = ", ".join(f"{sum(u.role == r for u in users)} {r}" for r in roles) or "none"
        disabled = sum(u.disabled for u in users)
        sso = await directory.get_sso(actor)
        key = crypto.recording_key_id(org.recording_key) if org.recording_key else None
        sites = await directory.list_sites(actor)
        created = (
            datetime.fromtimestamp(org.created_at, UTC).isoformat(timespec="minutes")
            if org.created_at > 0
            else "with the installation"
        )
        shown.extend(
            [
                ("organisation", org.org_id),
                ("name", org.name),
                ("created", created),
                ("retention", f"{org.retention_days} days"),
                ("recording key", key or "none (sessions cannot be recorded)"),
                ("single sign-on", sso["issuer"] if sso else "off"),
                ("teams", ", ".join(await directory.list_teams(actor)) or "none"),
                ("sites", ", ".join(f"{s.site_id} ({s.origin})" for s in sites) or "none"),
                ("accounts", by_role + (f" ({disabled} disabled)" if disabled else "")),
            ]
        )

    _run_directory(data_dir, run)
    for label, value in shown:
        typer.echo(f"{label + ':':<16}{value}")


@site_app.command("add")
def site_add(
    site_id: Annotated[str, typer.Argument(help="Short id: lower-case letters, digits, . _ -")],
    origin: Annotated[str, typer.Option(help="The site's origin, e.g. https://shop.example.")],
    team: Annotated[
        list[str], typer.Option("--team", help="A team that serves this site; repeatable.")
    ],
    org: OrgOption = DEFAULT_ORG,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    policy: Annotated[
        Path | None,
        typer.Option(parser=_path, help="The site's masking policy (JSON, docs/privacy.md)."),
    ] = None,
    data_dir: DataDir = None,
    init: Init = False,
) -> None:
    """Register a website whose pages may start sessions, and the teams that serve it."""

    async def run(settings: Settings, directory: Directory) -> None:
        document = load_policy(policy, settings.max_input_file_bytes) if policy else None
        await _org_of(directory, org)
        await _check_teams(directory, org, team)
        await directory.add_site(operator(org), site_id, origin, name, tuple(team), document)

    _run_configured(data_dir, run, init=init)
    typer.echo(f"Registered site {site_id!r} ({origin}) for {org!r}, served by {', '.join(team)}.")


@site_app.command("approve")
def site_approve(
    site_id: Annotated[str, typer.Argument(help="The site an organisation registered.")],
    data_dir: DataDir = None,
) -> None:
    """Vouch for a site's origin without its verification page: its pages may start sessions.
    Check first that the organisation really runs that website."""

    async def run(directory: Directory) -> None:
        site = await directory.storage.get_site(site_id)
        org = site.org_id if site else DEFAULT_ORG
        await directory.approve_site(operator(org), site_id)

    _run_directory(data_dir, run)
    typer.echo(f"Approved site {site_id!r}: its pages may start sessions.")


async def _site_of_origin(directory: Directory, origin: str, org: str | None) -> SiteRecord | None:
    """The site ``tandem site verify ORIGIN`` means: the organisation's, with ``--org`` (several
    organisations may have registered an origin none of them proved); else the one holding it
    verified, else the only registration. ConfigError when several wait and ``--org`` is
    missing."""
    if org is not None:
        return await directory.storage.org_site_for_origin(Grant.operator(org), origin)
    held = await directory.storage.site_for_origin(origin)
    if held is not None:
        return held
    claims = [s for s in await directory.storage.all_sites() if s.origin == origin]
    if len(claims) > 1:
        names = ", ".join(sorted(s.org_id for s in claims))
        raise ConfigError(f"{origin} is registered by several organisations ({names}): add --org")
    return claims[0] if claims else None


@site_app.command("verify")
def site_verify(
    site: Annotated[str, typer.Argument(help="The site's id, or its origin (https://…).")],
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="The organisation that registered it (checked if given).", parser=_org_id
        ),
    ] = None,
    web: Annotated[
        bool,
        typer.Option(
            "--web",
            help="Fetch <origin>/.well-known/tandem-verification instead of the DNS TXT record.",
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Prove a site's origin: look up the TXT record of _tandem-verification.<host> (with --web,
    fetch its verification page) and, if it holds the site's token, mark the site verified. On
    failure, say why and what to publish. Audited either way."""
    proved: list[str] = []
    publish: list[str] = []

    async def run(settings: Settings, directory: Directory) -> None:
        found = (
            await _site_of_origin(directory, normalize_origin(site), org)
            if "://" in site
            else await directory.storage.get_site(site)
        )
        if found is None or (org is not None and found.org_id != org):
            where = f" in organisation {org!r}" if org is not None else ""
            raise ConfigError(f"no site {site!r}{where} (tandem site list)")
        if found.verified:
            proved.append(f"Site {found.site_id!r} ({found.origin}) is already verified.")
            return
        token = site_verification.token(directory.box, found)
        name = site_verification.dns_name(found)
        if web:
            publish.append(f"Serve {token} at {site_verification.url(found)}")
        elif name is not None:
            publish.append(f'Publish a TXT record: {name}. TXT "{token}"')
        await directory.verify_site(
            operator(found.org_id),
            found.site_id,
            settings.site_verification_timeout_seconds,
            dns=not web,
            nameservers=settings.site_verification_nameservers,
        )
        how = f"{site_verification.url(found)} serves" if web else f"the TXT record of {name} holds"
        proved.append(
            f"Verified site {found.site_id!r} ({found.origin}): {how} its token; "
            "its pages may start sessions."
        )

    try:
        _run_configured(data_dir, run)
    except typer.Exit:
        for line in publish:
            typer.echo(line, err=True)
        raise
    typer.echo(proved[0])


@site_app.command("list")
def site_list(
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="Only this organisation's (default: every one).", parser=_org_id
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Every registered site: id, organisation, origin, teams."""
    found: list[str] = []

    async def run(directory: Directory) -> None:
        if org is not None:
            await _org_of(directory, org)
        for site in await directory.storage.all_sites():
            if org is not None and site.org_id != org:
                continue
            state = "" if site.verified else "\tunverified (tandem site verify, or approve)"
            found.append(
                f"{site.site_id}\t{site.org_id}\t{site.origin}\t{','.join(site.teams)}{state}"
            )

    _run_directory(data_dir, run)
    for line in found:
        typer.echo(line)


def _run_directory(
    data_dir: Path | None,
    work: Callable[[Directory], Awaitable[None]],
    *,
    init: bool | None = None,
) -> None:
    """Run ``work`` on the directory of the data dir's database (checked by :func:`_load`)."""
    _run_configured(data_dir, lambda _settings, directory: work(directory), init=init)


def _run_configured(
    data_dir: Path | None,
    work: Callable[[Settings, Directory], Awaitable[None]],
    *,
    init: bool | None = None,
    secrets_key_needed: bool = False,
) -> None:
    """:func:`_run_directory` for work that needs the settings too. With
    ``secrets_key_needed`` (``tandem secrets``), a missing secrets key is refused instead of
    made anew as a first start makes it: a new key opens none of the stored secrets, and a
    running server that still holds the old ring would take up the new file."""

    async def run() -> None:
        async with offline(settings) as directory:
            await work(settings, directory)

    try:
        settings = _load(data_dir, init=init)
        if secrets_key_needed and not settings.secrets_key_path.is_file():
            raise ConfigError(
                f"there is no secrets key at {settings.secrets_key_path}: restore it from its "
                "backup (a new key would open none of the stored secrets; docs/operations.md)"
            )
        existed = settings.database_path.is_file()
        _run(run())
    except TandemError as exc:
        raise _fail(exc) from None
    _created(settings, existed)


CheckpointFile = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        parser=_path,
        help="A file of checkpoints (one per line) from `tandem audit checkpoint`: prove the "
        "trail still holds each of them.",
    ),
]


@audit_app.command("verify")
def audit_verify(
    data_dir: DataDir = None, audit_key: AuditKey = None, checkpoint: CheckpointFile = None
) -> None:
    """Check the hash chain, the records' MACs, the anchors (genuine, in order, none missing)
    and, with --checkpoint, that the trail still holds each checkpoint; name the first broken
    record. Then compare the sessions and recordings stored with those the trail says exist,
    and name each one deleted without a record of it (outside Tandem).
    Exit 1 if broken or a row is missing, 2 if it cannot be checked."""
    try:
        settings, key, records, anchors, stored = _load_trail(data_dir, audit_key, rows=True)
        checkpoints = _read_checkpoints(checkpoint, settings) if checkpoint else []
    except AuditTrailDamaged as exc:
        typer.echo(f"audit trail BROKEN: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except TandemError as exc:
        raise _fail(exc) from None
    verdict = verify(
        records,
        anchors,
        key,
        legacy_every=settings.audit_anchor_every,
        checkpoints=checkpoints,
    )
    if not verdict.ok:
        _report_broken(verdict)
    assert stored is not None
    rows = reconcile(records, stored)
    newest = max(checkpoints, key=lambda c: c.seq, default=None)
    typer.echo(
        f"audit trail intact: {verdict.records} records, {verdict.anchors} anchors,"
        f" {verdict.checkpoints} checkpoints checked"
        + (f" (newest: record {newest.seq}, {newest.time})" if newest else "")
        + (
            f"; every record from {verdict.macs_from} on has its MAC"
            if verdict.macs_from
            else "; no record MACs yet (written before them)"
            if verdict.records
            else ""
        )
    )
    if rows.sessions_from == NEVER:
        typer.echo(
            "sessions are not compared with the rows stored: the latest server to start was of"
            " a version that deleted sessions' records without recording it"
        )
    elif rows.sessions_from:
        typer.echo(
            f"sessions created before record {rows.sessions_from} (the first start of a server"
            " that records every deletion) are not compared with the rows stored"
        )
    for org, seq in rows.unnamed:
        typer.echo(
            f"organisation {org!r}: sessions created before record {seq} (a subject erased"
            " before erasures named their sessions) are not compared with the rows stored"
        )
    if rows.missing:
        for missing in rows.missing:
            typer.echo(f"row MISSING: {missing.line()}", err=True)
        typer.echo(
            f"stored rows DISAGREE with the audit trail: {len(rows.missing)} deleted outside"
            " Tandem",
            err=True,
        )
        raise typer.Exit(code=1)
    typer.echo(
        f"stored rows agree: the {rows.sessions} sessions and {rows.recordings} recordings"
        " the trail says exist are stored"
    )


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = None, audit_key: AuditKey = None) -> None:
    """Verify the trail, then print its signed head as one line of JSON: the last record's
    number and hash, the last anchor, the time, and a MAC with the audit key. Append it to a log
    outside this machine; `tandem audit verify --checkpoint FILE` proves the trail still holds
    it. Exit 1 (and print nothing) if the trail is broken."""
    try:
        settings, key, records, anchors, _ = _load_trail(data_dir, audit_key)
    except AuditTrailDamaged as exc:
        typer.echo(f"audit trail BROKEN: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except TandemError as exc:
        raise _fail(exc) from None
    verdict = verify(records, anchors, key, legacy_every=settings.audit_anchor_every)
    if not verdict.ok:
        _report_broken(verdict)
    typer.echo(make_checkpoint(records, anchors, key, time.time()).to_line())


def _report_broken(verdict: Verdict) -> NoReturn:
    if verdict.first_bad_seq is None:
        typer.echo(f"audit checkpoint REJECTED: {verdict.problem}", err=True)
    else:
        typer.echo(
            f"audit trail BROKEN at record {verdict.first_bad_seq}: {verdict.problem}", err=True
        )
    raise typer.Exit(code=1)


def _read_checkpoints(path: Path, settings: Settings) -> list[Checkpoint]:
    try:
        lines = read_text(path, settings.max_input_file_bytes).splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the checkpoints {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the checkpoints {path} are not text (UTF-8)") from None
    checkpoints = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                checkpoints.append(Checkpoint.from_line(line))
            except ConfigError as exc:
                raise ConfigError(f"{path}, line {number}: {exc}") from None
    if not checkpoints:
        raise ConfigError(f"no checkpoint in {path}")
    return checkpoints


def _load_trail(
    data_dir: Path | None, audit_key: Path | None, *, rows: bool = False
) -> tuple[Settings, bytes, list[AuditRecord], list[Anchor], Inventory | None]:
    """The settings, the audit key, the trail and its anchors; with ``rows``, the sessions and
    recordings stored too (read first: tandem.reconcile)."""
    settings = _load(data_dir, audit_key_file=audit_key)
    if not settings.audit_key_path.is_file():
        raise ConfigError(f"no audit key at {settings.audit_key_path}")
    key = load_or_create_key(settings.audit_key_path)
    records, anchors, stored = _run(_read_audit(settings, since=0.0, rows=rows))
    return settings, key, records, anchors, stored


@audit_app.command("export")
def audit_export(
    since: Annotated[
        str, typer.Option(help="Only records at or after this time (ISO 8601, e.g. 2026-11-25).")
    ] = "1970-01-01",
    after: Annotated[
        int,
        typer.Option(
            "--after",
            min=0,
            max=2**63 - 1,
            help="Only records after this one (its seq): a SIEM's cursor. Records the database "
            "took late (written at the next start) keep the time of the change, and --since "
            "misses them; seq only grows.",
        ),
    ] = 0,
    data_dir: DataDir = None,
) -> None:
    """Write the audit records as JSON lines (for a SIEM) to standard output."""
    try:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise ConfigError(f"--since is not an ISO 8601 time: {since!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        settings = _load(data_dir)
        records, _, _ = _run(_read_audit(settings, since=moment.timestamp(), after=after))
    except TandemError as exc:
        raise _fail(exc) from None
    for record in records:
        line = record.to_json()
        line["time"] = datetime.fromtimestamp(record.at, UTC).isoformat()
        typer.echo(json.dumps(line, sort_keys=True))


async def _read_audit(
    settings: Settings, since: float, *, after: int = 0, rows: bool = False
) -> tuple[list[AuditRecord], list[Anchor], Inventory | None]:
    from sqlalchemy.exc import SQLAlchemyError

    if not settings.database_url and not settings.database_path.is_file():
        raise ConfigError(f"no database at {settings.database_path}")
    storage = await open_storage(settings)
    try:
        stored = await storage.inventory() if rows else None
        return await storage.audit_records(since, after), await storage.anchors(), stored
    except (SQLAlchemyError, sqlite3.Error, StorageError, ValueError) as exc:
        # A migrated database whose audit tables are gone or hold garbage: evidence, not a crash.
        raise AuditTrailDamaged(
            f"the audit tables cannot be read ({exc.__class__.__name__}: {exc})"
        ) from None
    finally:
        await storage.close()


@recording_app.command("open")
def recording_open(
    recording: Annotated[
        Path, typer.Argument(parser=_path, help="An exported recording (.tandemrec).")
    ],
    key: Annotated[Path, typer.Option(parser=_path, help="The organisation's recording key file.")],
    out: Annotated[
        Path | None,
        typer.Option(parser=_path, help="Write the rrweb events here (default: standard output)."),
    ] = None,
    passphrase_stdin: Annotated[
        bool, typer.Option(help="Read the key's passphrase from standard input.")
    ] = False,
    require_complete: Annotated[
        bool,
        typer.Option(
            help="Refuse a recording cut short (no end marker) instead of opening it up to "
            "where it stopped."
        ),
    ] = False,
) -> None:
    """Decrypt an exported recording offline into rrweb events (JSON), for a legal hold or any
    rrweb player. Needs the key file and its passphrase; the server is not involved.

    A recording cut short (a crash: ``interrupted``; storage failing: ``unavailable``) opens up
    to where it stopped, as in the console's player: the JSON says ``"complete": false`` and
    ``incomplete`` why, and standard error says INCOMPLETE RECORDING. Everything else is checked
    as for a whole recording."""
    from tandem.recordings import recording_events, shown_on_terminal

    try:
        # A recording is as large as the exporting server allowed: not capped here.
        data = read_file(recording, sys.maxsize)
        key_text = read_text(key, KEY_FILE_MAX_BYTES)
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename}: {exc.strerror}") from None
    except UnicodeDecodeError:  # a binary file (the recording itself, say) given as the key
        raise _fail(f"{key} is not a Tandem recording key file") from None
    if passphrase_stdin or not sys.stdin.isatty():
        passphrase = sys.stdin.readline().rstrip("\r\n")
    else:
        passphrase = typer.prompt("Key passphrase", hide_input=True)
    try:
        header, events = recording_events(data, key_text, passphrase, partial=not require_complete)
    except TandemError as exc:
        raise _fail(exc) from None
    opened: dict[str, Any] = {"recording": header, "complete": header["complete"]}
    if not header["complete"]:
        # The server's end reason is its word only; the missing end marker is what is known.
        said = shown_on_terminal(header.get("end_reason") or "still running")
        opened["incomplete"] = f"{crypto.Broken.TRUNCATED} (the server says: {said})"
        typer.echo(
            f"tandem: INCOMPLETE RECORDING: it stops where it was cut short (the server says: "
            f"{said}); {len(events)} events saved until then, unedited up to that point",
            err=True,
        )
    opened["events"] = events
    text = json.dumps(opened)
    if out is None:
        typer.echo(text)
    else:
        try:
            write_private(out, text.encode("utf-8"))
        except OSError as exc:
            raise _fail(f"cannot write {out}: {exc.strerror}") from None
        typer.echo(
            f"{len(events)} events of recording {shown_on_terminal(header.get('recording_id'))} "
            f"-> {out}",
            err=True,
        )


def _sdk_integrity(sdk_file: Path, what: str = "the SDK") -> tuple[bytes, str]:
    """A built bundle's bytes (the SDK's, or the console's) and their Subresource Integrity value
    (``sha384-…``), computed from the file itself and checked against the manifest the build wrote
    beside the SDK (``static/sdk/integrity.json``).

    Raises :class:`ConfigError` when the file is missing, the manifest is missing or unreadable, or
    the two disagree (the file changed after the build, or the manifest did).
    """
    try:
        data = sdk_file.read_bytes()
    except OSError:
        raise ConfigError(f"{what} is not built ({sdk_file}): `make setup` builds it") from None
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
    manifest_file = sdk_file.parent.parent / "sdk" / "integrity.json"
    try:
        built = json.loads(manifest_file.read_text())[f"{sdk_file.parent.name}/{sdk_file.name}"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"no integrity manifest for {what} ({manifest_file}): rebuild it (`make setup`)"
        ) from None
    if not hmac.compare_digest(str(built), integrity):
        raise ConfigError(
            f"{sdk_file} is not the file that was built: its hash is {integrity}, the build "
            f"recorded {built}. Rebuild it (`make setup`), or find out who changed it."
        )
    return data, integrity


@app.command("sdk")
def sdk_tag(
    base_url: Annotated[
        str | None,
        typer.Option(
            help="The Tandem server as your pages reach it, e.g. https://tandem.example.com "
            "(default: http(s)://HOST:PORT from the settings)."
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="For the default --base-url (env TANDEM_HOST; default 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="For the default --base-url (env TANDEM_PORT; default 8000).")
    ] = None,
    copy_to: Annotated[
        Path | None,
        typer.Option(
            parser=_path,
            help="Also write the SDK (tandem.js) into this directory, to serve it from your "
            "site's own origin; the tag printed is then for that copy.",
        ),
    ] = None,
    src: Annotated[
        str | None,
        typer.Option(help="With --copy-to: the copy's address on your site [default /tandem.js]."),
    ] = None,
) -> None:
    """Print the <script> tag that pins the customer SDK by its hash (Subresource Integrity): a
    browser runs the SDK only if its bytes are exactly these. Pin again after each upgrade."""
    from tandem.server.app import SDK_FILE

    if src is not None and copy_to is None:  # the tag would name the server's file, not src
        raise _fail("--src goes with --copy-to: it is the address of the copy on your site")
    if src is not None and not src.strip():
        raise _fail("--src is empty: give the copy's address on your site, e.g. /js/tandem.js")
    try:
        if base_url is None:
            settings = Settings.load(host=host, port=port)
            base_url = f"{'https' if settings.tls else 'http'}://{settings.host}:{settings.port}"
        server = normalize_origin(base_url)
        data, integrity = _sdk_integrity(SDK_FILE)
    except TandemError as exc:
        raise _fail(exc) from None
    pin = f'integrity="{integrity}" crossorigin="anonymous" referrerpolicy="no-referrer"'
    if copy_to is None:
        typer.echo(f'<script src="{html.escape(server)}/sdk/tandem.js" {pin}></script>')
        return
    copy = copy_to / SDK_FILE.name
    try:
        copy_to.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(data)
        written = copy.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot write {copy}: {exc.strerror}") from None
    if written != data:
        raise _fail(f"{copy} does not hold what was written")
    src = src or "/tandem.js"
    typer.echo(f"Wrote {copy}; serve it at {src} on your site.", err=True)
    typer.echo(
        f'<script src="{html.escape(src)}" data-tandem-server="{html.escape(server)}" {pin}>'
        "</script>"
    )


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Bring the database's schema up to date (servers also do it when they start). An SQLite
    file is copied beside itself first; PostgreSQL: take a backup before."""

    async def run() -> str:
        storage = await open_storage(settings)
        try:
            return await storage.revision() or "none"
        finally:
            await storage.close()

    try:
        settings = _load(data_dir)
        revision = _run(run())
    except TandemError as exc:
        raise _fail(exc) from None
    typer.echo(f"The database is at schema revision {revision} (current).")


@db_app.command("copy")
def db_copy(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The PostgreSQL database to copy into (postgresql://...): new, or migrated "
            "and still empty.",
        ),
    ],
    data_dir: DataDir = None,
) -> None:
    """Copy a whole installation (accounts, organisations, sites, sessions, recordings, the audit
    trail and its anchors) from this one's database into another. Stop the servers first; the
    source is left as it was. Then point the servers at the target (TANDEM_DATABASE_URL)."""
    from tandem.storage.sql import SQLStorage, redact_dsn

    async def run() -> dict[str, int]:
        source = await open_storage(settings)
        try:
            target = await SQLStorage.connect(to)
            try:
                return await source.copy_to(target)
            finally:
                await target.close()
        finally:
            await source.close()

    try:
        if Settings.load(environ={"TANDEM_DATABASE_URL": to}).database_url is None:
            raise TandemError("--to must be a postgresql:// URL")
        settings = _load(data_dir)
        copied = _run(run())
    except TandemError as exc:
        raise _fail(exc) from None
    total = sum(copied.values())
    typer.echo(f"Copied {total} rows to {redact_dsn(to)}:")
    for table, count in copied.items():
        typer.echo(f"  {table:<18} {count}")


CONSOLE_FILES = ("index.html", "console.js", "console.css", "rrweb.css")
"""The console's static files, as `tandem console --copy-to` writes them."""


def console_page(index: str, relay: str, integrity: str) -> str:
    """The console's index.html for hosting elsewhere: its files referred to relatively (beside
    it), console.js pinned by its hash, and the relay named in ``<meta name="tandem-relay">``."""
    meta = '<meta charset="utf-8">'
    edits = {
        meta: f'{meta}\n  <meta name="tandem-relay" content="{html.escape(relay)}">',
        'href="/console/console.css"': 'href="console.css"',
        'href="/console/rrweb.css"': 'href="rrweb.css"',
        '<script src="/console/console.js" defer>': (
            f'<script src="console.js" integrity="{integrity}" defer>'
        ),
    }
    for old, new in edits.items():
        if index.count(old) != 1:
            raise ConfigError(f"the console's index.html is not as expected (looked for {old})")
        index = index.replace(old, new)
    return index


@app.command("console")
def console_copy(
    copy_to: Annotated[
        Path,
        typer.Option(
            parser=_path, help="Write the console's files (index.html, console.js, CSS) here."
        ),
    ],
    relay: Annotated[
        str,
        typer.Option(
            help="The Tandem server as the agents' browsers reach it, an origin such as "
            "https://tandem.bank.example; start it with --console-origin naming where the copy "
            "is served."
        ),
    ],
) -> None:
    """Copy the agent console for serving from your own origin (docs/deployment.md, "Serving the
    console from your own origin"), and print console.js's hash to pin and check it by."""
    from tandem.server.app import STATIC

    source = STATIC / "console"
    try:
        origin = normalize_origin(relay)
        script, integrity = _sdk_integrity(source / "console.js", "the console")
        files = {
            "index.html": console_page(
                (source / "index.html").read_text(encoding="utf-8"), origin, integrity
            ).encode(),
            "console.js": script,
            "console.css": (source / "console.css").read_bytes(),
            "rrweb.css": (source / "rrweb.css").read_bytes(),
        }
    except TandemError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(f"the console is not built ({exc.filename}): `make setup` builds it") from None
    try:
        copy_to.mkdir(parents=True, exist_ok=True)
        for name in CONSOLE_FILES:
            (copy_to / name).write_bytes(files[name])
    except OSError as exc:
        raise _fail(f"cannot write into {copy_to}: {exc.strerror}") from None
    typer.echo(f"Wrote {', '.join(CONSOLE_FILES)} into {copy_to} for the relay {origin}.", err=True)
    typer.echo(f"Start the relay with --console-origin <the origin serving {copy_to}>.", err=True)
    typer.echo(f"console.js {integrity}")


# Compliance, security updates, data subject requests, legal holds (issue 16)

Format = Annotated[str, typer.Option("--format", help="text or json.")]


def _check_format(value: str) -> str:
    if value not in ("text", "json"):
        raise ConfigError(f"--format is text or json, not {value!r}")
    return value


@compliance_app.command("check")
def compliance_check(
    profile: Annotated[str, typer.Option(help="gdpr, hipaa or pci-dss.")],
    output: Format = "text",
    org: OrgOption = DEFAULT_ORG,
    checkpoint: CheckpointFile = None,
    advisory_file: Annotated[
        Path | None,
        typer.Option(
            parser=_path,
            help="OSV advisories to check the SBOM against [env TANDEM_ADVISORY_FILE].",
        ),
    ] = None,
    data_dir: DataDir = None,
    audit_key: AuditKey = None,
) -> None:
    """Inspect the live configuration and data of an organisation against a profile: each
    requirement with pass, fail or not applicable, its reference and the fix for a failure. Run
    it with the server's environment (TANDEM_*). Exit 1 if anything fails."""
    from tandem.compliance import check_profile, evaluate, gather

    async def run() -> str:
        async with offline(settings) as directory:
            if await directory.storage.get_org(Grant.operator(org)) is None:
                raise ConfigError(f"no organisation {org!r} (tandem org add)")
            actor = operator(org)
            installation = await gather(settings, directory, actor, now, checkpoints)
            report = evaluate(chosen, installation, now)
            failed.extend(report.failed)
            if output == "json":
                return json.dumps(report.to_json(), indent=2)
            return report.to_text()

    failed: list[object] = []
    try:
        chosen = check_profile(profile)
        _check_format(output)
        settings = _load(data_dir, audit_key_file=audit_key, advisory_file=advisory_file)
        _same_settings_as_the_server(settings)
        checkpoints = _read_checkpoints(checkpoint, settings) if checkpoint else []
        now = time.time()
        text = _run(run())
    except TandemError as exc:
        raise _fail(exc) from None
    typer.echo(text)
    if failed:
        raise typer.Exit(code=1)


def _forget_note(
    data_dir: Path | None,
    audit_key: Path | None,
    note: str,
    old_file: Callable[[Settings], Path],
    removed: str,
    none: str,
) -> None:
    """Remove the database's installation note ``note`` and an earlier version's file of it in
    the data directory (``old_file``), saying ``removed`` or, with neither there, ``none``. A
    removal is on record (``compliance_note_forgotten``): the note fails a compliance item, and
    who cleared it, when, is evidence. The record is written first: one the database refuses
    leaves the note in place."""

    async def run() -> bool:
        async with offline(settings) as directory:
            stored = await directory.storage.installation_note(note)
            if stored is None and not old_file(settings).exists():
                return False
            await directory.record(
                "compliance_note_forgotten", actor="cli", org=DEFAULT_ORG, subject=note
            )
            await directory.storage.forget_installation_note(note)
            with contextlib.suppress(FileNotFoundError):  # an earlier version's note
                old_file(settings).unlink()
        return True

    try:
        settings = _load(data_dir, audit_key_file=audit_key)
        forgotten = _run(run())
    except TandemError as exc:
        raise _fail(exc) from None
    except OSError as exc:  # the data directory's note, there but not removable
        raise _fail(f"cannot remove {old_file(settings)}: {exc.strerror}") from None
    typer.echo(removed if forgotten else none)


@compliance_app.command("forget-proxy")
def compliance_forget_proxy(data_dir: DataDir = None, audit_key: AuditKey = None) -> None:
    """Remove the note that requests came through a reverse proxy while no public origin was
    set (it fails the public_origin item of every server on the database and warns at their
    starts): once no proxy forwards to the servers, or once --public-origin is set."""
    _forget_note(
        data_dir,
        audit_key,
        PROXY_NOTE,
        lambda settings: settings.proxy_seen_path,
        "the reverse proxy's note is removed",
        "no reverse proxy was noted",
    )


@compliance_app.command("forget-plain-http")
def compliance_forget_plain_http(data_dir: DataDir = None, audit_key: AuditKey = None) -> None:
    """Remove the note that a request came over plain HTTP (it fails the transport item of
    every server on the database): once the proxy forwards only HTTPS. Removed while plain
    requests still come, a server notes it again (within transport_note_recheck_seconds)."""
    _forget_note(
        data_dir,
        audit_key,
        PLAIN_HTTP_NOTE,
        lambda settings: settings.plain_http_seen_path,
        "the plain HTTP request's note is removed",
        "no request over plain HTTP was noted",
    )


def _same_settings_as_the_server(settings: Settings) -> None:
    """Raise ConfigError when the server last started on this data directory runs with other
    settings than this command read from its environment: the report would be of settings that
    do not run (a shell with TANDEM_LOGIN_IDLE_SECONDS=900 passed the timeouts of a server
    running with 1800)."""
    from tandem.config import serving_differences

    differences = serving_differences(settings)
    if differences:
        raise ConfigError(
            "the server of this data directory runs with other settings than this command "
            f"read ({'; '.join(differences)}): run the check with the server's environment "
            "(TANDEM_*), or read the server's own report (console: Administration, "
            "Compliance; GET /api/compliance)"
        )


def _census_lines(found: secrets_rotation.Census) -> list[str]:
    lines = [f"current key {found.current}"]
    lines += [f"previous key {key}" for key in found.previous]
    if found.staged:
        lines.append(f"staged key {found.staged} (next: tandem secrets rotate)")
    lines.append(
        f"{found.sealed} stored secrets; {len(found.sealed_with_previous)} still sealed with "
        "a previous or the staged key"
    )
    for secret in found.unreadable:
        lines.append(
            f"UNREADABLE {secret.kind} of {secret.key}: sealed with a key this ring does not "
            "hold (restore the old secrets.key, or reset it: docs/operations.md)"
        )
    for username, count in sorted(found.codes_with_previous.items()):
        lines.append(
            f"{username}: {count} recovery codes keyed with a previous key (they work until "
            "it is retired; renewing them keys them with the current one)"
        )
    for username, count in sorted(found.codes_lost.items()):
        lines.append(
            f"{username}: {count} recovery codes keyed with a key this ring does not hold "
            "(unusable: the owner renews them, or an admin resets the second factor)"
        )
    for username, count in sorted(found.codes_unkeyed.items()):
        lines.append(f"{username}: {count} recovery codes stored unkeyed by an older version")
    return lines


@secrets_app.command("status")
def secrets_status(data_dir: DataDir = None) -> None:
    """The keys of secrets.key and what needs which: stored secrets still sealed with a
    previous key, accounts whose recovery codes are keyed with one."""

    async def work(settings: Settings, directory: Directory) -> None:
        box = crypto.SecretBox(settings.secrets_key_path)
        for line in _census_lines(await secrets_rotation.census(directory.storage, box)):
            typer.echo(line)

    _run_configured(data_dir, work, secrets_key_needed=True)


@secrets_app.command("stage")
def secrets_stage(data_dir: DataDir = None) -> None:
    """Add the next key to secrets.key, to open and check with before it seals anything: with
    several servers, copy the file to every server and restart each before `rotate`."""

    async def work(settings: Settings, directory: Directory) -> None:
        with secrets_rotation.exclusive(settings.secrets_key_path):
            ring = await secrets_rotation.stage(settings.secrets_key_path, directory.record)
        assert ring.staged is not None
        staged = crypto.key_id(ring.staged)
        typer.echo(
            f"staged key {staged} in {settings.secrets_key_path}: copy the file to every "
            "server, restart each, then run `tandem secrets rotate`"
        )

    _run_configured(data_dir, work, secrets_key_needed=True)


@secrets_app.command("rotate")
def secrets_rotate(data_dir: DataDir = None) -> None:
    """Make the staged key (or a new one) current and seal every stored secret again with it;
    the replaced key is kept to check recovery codes keyed with it, until `retire`."""

    async def work(settings: Settings, directory: Directory) -> None:
        with secrets_rotation.exclusive(settings.secrets_key_path):
            box, resealed, changed = await secrets_rotation.rotate(
                directory.storage, settings.secrets_key_path, directory.record
            )
        typer.echo(
            f"current key {box.ring.current_id}; {resealed} stored secrets sealed again"
            + (f", {changed} changed meanwhile (left as changed)" if changed else "")
        )
        typer.echo(
            "copy secrets.key to every server and restart each, then run "
            "`tandem secrets retire` (back up the new file first: docs/operations.md)"
        )
        for line in _census_lines(await secrets_rotation.census(directory.storage, box))[1:]:
            typer.echo(line)

    _run_configured(data_dir, work, secrets_key_needed=True)


@secrets_app.command("reseal")
def secrets_reseal(data_dir: DataDir = None) -> None:
    """Seal again with the current key what a previous key still seals (after a rotation
    stopped half-way, or what a server still on the old key ring sealed)."""

    async def work(settings: Settings, directory: Directory) -> None:
        box = crypto.SecretBox(settings.secrets_key_path)
        with secrets_rotation.exclusive(settings.secrets_key_path):
            resealed, changed = await secrets_rotation.reseal(directory.storage, box)
        typer.echo(
            f"{resealed} stored secrets sealed again with key {box.ring.current_id}"
            + (f", {changed} changed meanwhile (left as changed)" if changed else "")
        )

    _run_configured(data_dir, work, secrets_key_needed=True)


@secrets_app.command("retire")
def secrets_retire(
    data_dir: DataDir = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Retire even though some accounts' recovery codes are keyed with a previous "
            "key: those codes stop working (the accounts are named).",
        ),
    ] = False,
) -> None:
    """Drop the previous keys from secrets.key once nothing needs them (every stored secret
    sealed with the current key, no recovery codes keyed with a previous one)."""

    async def work(settings: Settings, directory: Directory) -> None:
        with secrets_rotation.exclusive(settings.secrets_key_path):
            box, found = await secrets_rotation.retire(
                directory.storage, settings.secrets_key_path, directory.record, force=force
            )
        typer.echo(f"previous keys retired; current key {box.ring.current_id}")
        for username in sorted(found.codes_with_previous):
            typer.echo(f"{username}: its recovery codes no longer work (it renews them)")

    _run_configured(data_dir, work, secrets_key_needed=True)


@security_app.command("status")
def security_status(
    advisory_file: Annotated[
        Path | None,
        typer.Option(parser=_path, help="OSV advisories (JSON) [env TANDEM_ADVISORY_FILE]."),
    ] = None,
    output: Format = "text",
) -> None:
    """Compare this version and its SBOM with an advisory file in OSV format: print what is
    affected and the versions that fix it. Exit 1 if anything is affected, the file is older
    than TANDEM_ADVISORY_MAX_AGE_DAYS or missing."""
    from tandem.sbom import status

    try:
        _check_format(output)
        settings = Settings.load(advisory_file=advisory_file)
    except TandemError as exc:
        raise _fail(exc) from None
    state = status(
        settings.advisory_file,
        settings.advisory_max_age_days,
        time.time(),
        max_bytes=settings.max_advisory_file_bytes,
    )
    if output == "json":
        typer.echo(json.dumps(state.to_json(), indent=2))
    else:
        typer.echo(f"tandem {state.version}: {state.components} components in the SBOM")
        if state.advisory_file:
            age = (
                "no date in it"
                if state.advisory_age_days is None
                else f"{state.advisory_age_days} days old"
            )
            typer.echo(
                f"advisories: {state.advisory_file} ({age}" + (", STALE)" if state.stale else ")")
            )
        for finding in state.findings:
            fixed = f"fixed in {', '.join(finding.fixed)}" if finding.fixed else "no fix yet"
            typer.echo(
                f"AFFECTED {finding.component.ecosystem} {finding.component.name} "
                f"{finding.component.version}: {finding.advisory} ({fixed}) {finding.summary}"
            )
        if state.problem:
            typer.echo(f"problem: {state.problem}", err=True)
        if state.ok:
            typer.echo("no known vulnerability")
    if not state.ok:
        raise typer.Exit(code=1)


@security_app.command("sbom")
def security_sbom() -> None:
    """Print the CycloneDX SBOM this build ships (JSON)."""
    from tandem.sbom import load_sbom

    try:
        document = load_sbom()
    except TandemError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(document, indent=1))


SubjectArgument = Annotated[
    str, typer.Argument(help="The customer: the sub of the site's customer token, or a session id.")
]


ByOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="sub or session: what SUBJECT is, when it is both a session's id and another "
        "customer's sub (refused as ambiguous without it).",
    ),
]


def _run_subjects(data_dir: Path | None, work: Callable[[Any], Awaitable[None]], org: str) -> None:
    """``work`` on the organisation ``org``'s subjects and holds; a NotFoundError for an
    organisation there is none of (its empty answers looked like a search that found nothing)."""
    from tandem.subjects import Subjects

    async def each(settings: Settings, directory: Directory) -> None:
        await _org_of(directory, org)
        log = AuditLog(
            directory.storage,
            load_or_create_key(settings.audit_key_path),  # offline() checked it for the trail
            settings.audit_anchor_every,
        )

        def witness(entries: Callable[[_T], Sequence[Entry]]) -> Evidence[_T]:
            return log.evidence(time.time(), entries)

        await work(
            Subjects(
                directory.storage,
                directory.record,
                time.time,
                witness,
                max_export_bytes=settings.max_subject_export_bytes,
                export_attempts=settings.subject_export_attempts,
            )
        )

    _run_configured(data_dir, each)


@subject_app.command("find")
def subject_find(
    subject: SubjectArgument,
    org: OrgOption = DEFAULT_ORG,
    by: ByOption = None,
    data_dir: DataDir = None,
) -> None:
    """List the sessions, recordings, audit records and reports concerning a customer."""
    found: list[dict[str, object]] = []

    async def work(subjects: Any) -> None:
        found.append((await subjects.look_up(operator(org), subject, by)).summary())

    _run_subjects(data_dir, work, org)
    typer.echo(json.dumps(found[0], indent=2))


@subject_app.command("export")
def subject_export(
    subject: SubjectArgument,
    org: OrgOption = DEFAULT_ORG,
    out: Annotated[
        Path | None,
        typer.Option(parser=_path, help="Write the archive here (default: standard output)."),
    ] = None,
    by: ByOption = None,
    data_dir: DataDir = None,
) -> None:
    """Write everything concerning a customer as a zip archive with a manifest (GDPR Art. 15);
    recordings stay encrypted to the organisation's key (its README says how to open them).
    Audited."""
    archive: list[bytes] = []

    async def work(subjects: Any) -> None:
        archive.append((await subjects.export(operator(org), subject, by))[1])

    _run_subjects(data_dir, work, org)
    if out is None:
        sys.stdout.buffer.write(archive[0])
        sys.stdout.buffer.flush()
    else:
        try:
            write_private(out, archive[0])
        except OSError as exc:
            raise _fail(f"cannot write {out}: {exc.strerror}") from None
        typer.echo(f"Wrote {out} ({len(archive[0])} bytes).", err=True)


@subject_app.command("erase")
def subject_erase(
    subject: SubjectArgument,
    org: OrgOption = DEFAULT_ORG,
    yes: Annotated[bool, typer.Option("--yes", help="Do it (there is no undo).")] = False,
    by: ByOption = None,
    data_dir: DataDir = None,
) -> None:
    """Erase a customer's sessions and recordings and unlink them from the audit trail (GDPR
    Art. 17). Refused while a legal hold covers them. Audited without the customer's id."""
    if not yes:
        raise _fail("erasure cannot be undone: add --yes (export the data first if asked)")
    done: list[dict[str, object]] = []

    async def work(subjects: Any) -> None:
        done.append(await subjects.erase(operator(org), subject, by))

    _run_subjects(data_dir, work, org)
    erased = done[0]
    recordings = erased["recordings"]
    typer.echo(
        f"Erased {erased['sessions']} session(s) and "
        f"{len(recordings) if isinstance(recordings, list) else 0} recording(s); "
        f"{erased['audit_records_kept']} audit record(s) kept, no longer linked to the customer."
    )


HoldKindArgument = Annotated[str, typer.Argument(help="recording or subject.")]
HoldTarget = Annotated[
    str, typer.Argument(help="A recording id, or a customer (token sub or session id).")
]
Reason = Annotated[str, typer.Option(help="Why (the case or request it serves); audited.")]


@hold_app.command("place")
def hold_place(
    kind: HoldKindArgument,
    target: HoldTarget,
    reason: Reason,
    org: OrgOption = DEFAULT_ORG,
    data_dir: DataDir = None,
) -> None:
    """Keep a recording or a customer's data from purge and erasure until the hold is lifted.
    A customer is a token's sub or a session id; one that nothing stored matches is held for
    the sessions a token with that sub starts later (the output says so)."""
    held: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    async def work(subjects: Any) -> None:
        placed = await subjects.place_hold(operator(org), kind, target, reason)
        held.append((placed.sessions, placed.recordings))

    _run_subjects(data_dir, work, org)
    sessions, recordings = held[0]
    typer.echo(f"Legal hold placed on {kind} {target}.")
    if sessions or recordings:
        typer.echo(
            f"It keeps {len(sessions)} session(s) and {len(recordings)} recording(s) from purge "
            "and erasure."
        )
    else:
        typer.echo(
            f"It holds nothing stored yet: no session of {org!r} has the id {target!r} or "
            "served a customer token with that sub; it will keep the sessions such a token "
            "starts. Lift it if that is not what you meant."
        )


@hold_app.command("lift")
def hold_lift(
    kind: HoldKindArgument,
    target: HoldTarget,
    reason: Reason,
    org: OrgOption = DEFAULT_ORG,
    data_dir: DataDir = None,
) -> None:
    """Lift a legal hold: retention and erasure apply again."""

    async def work(subjects: Any) -> None:
        await subjects.lift_hold(operator(org), kind, target, reason)

    _run_subjects(data_dir, work, org)
    typer.echo(f"Legal hold on {kind} {target} lifted.")


@hold_app.command("list")
def hold_list(org: OrgOption = DEFAULT_ORG, data_dir: DataDir = None) -> None:
    """The organisation's legal holds: kind, target, since, by whom, why."""
    lines: list[str] = []

    async def work(subjects: Any) -> None:
        for hold in await subjects.list_holds(operator(org)):
            since = datetime.fromtimestamp(hold.placed_at, UTC).isoformat(timespec="minutes")
            lines.append(f"{hold.kind}\t{hold.target}\t{since}\t{hold.placed_by}\t{hold.reason}")

    _run_subjects(data_dir, work, org)
    if not lines:  # said on standard error: standard output stays the (empty) list
        typer.echo(f"no legal holds in {org!r}", err=True)
    for line in lines:
        typer.echo(line)


def _run_training(
    data_dir: Path | None, work: Callable[[Directory, Training], Awaitable[None]]
) -> None:
    async def each(settings: Settings, directory: Directory) -> None:
        training = Training(
            directory.storage,
            settings,
            directory.clock,
            directory.entropy,
            directory.box,
            directory.record,
        )
        await work(directory, training)

    _run_configured(data_dir, each)


def _day(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def _standing_line(s: Standing) -> str:
    live = s.role in ("agent", "supervisor")
    policy = "n/a" if s.role == "admin" else f"v{s.acknowledged}" if s.acknowledged else "never"
    trained = "n/a"
    if live:
        trained = "never"
        if s.training:
            trained = (
                f"{_day(s.training.completed_at)} v{s.training.policy_version} {s.training.method}"
            )
    due = _day(s.due_at) if live else "n/a"
    state = "trained" if s.trained else "NOT TRAINED"
    return f"{s.username:<20} {s.role:<10} {policy:<7} {trained:<26} {due:<10} {state}"


@training_app.command("status")
def training_status(
    org: OrgOption = DEFAULT_ORG,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    data_dir: DataDir = None,
) -> None:
    """Who is trained, when, on which policy version, and when practice is due again."""
    if output not in ("text", "json"):
        raise _fail(f"--format is text or json, not {output!r}")
    lines: list[str] = []

    async def work(directory: Directory, training: Training) -> None:
        grant = Grant.operator(org)
        if await directory.storage.get_org(grant) is None:
            raise ConfigError(f"no organisation {org!r}")
        policy = await training.policy(grant)
        interval = await training.interval(grant)
        standings = await training.roster(grant, await directory.storage.list_users(grant))
        untrained = [s.username for s in standings if not s.trained]
        if output == "json":
            document = {
                "org_id": org,
                "policy_version": policy.version,
                "interval_days": interval,
                "untrained": untrained,
                "users": [s.to_json() for s in standings],
            }
            lines.append(json.dumps(document, indent=2))
            return
        lines.append(
            f"Organisation {org}: policy version {policy.version}, re-training every "
            f"{interval} days; {len(untrained)} of {len(standings)} accounts not trained."
        )
        lines.append(f"{'user':<20} {'role':<10} {'policy':<7} {'trained':<26} {'due':<10} status")
        lines.extend(_standing_line(s) for s in standings)

    _run_training(data_dir, work)
    typer.echo("\n".join(lines))


@training_app.command("record")
def training_record(
    username: Annotated[str, typer.Argument(help="The account that was trained.")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="Where and how the training was done (kept in the audit trail)."
        ),
    ],
    org: OrgOption = DEFAULT_ORG,
    data_dir: DataDir = None,
) -> None:
    """Record training done elsewhere (a classroom course, a test installation's set-up): the
    account acknowledges the current policy and counts as trained from now. Audited with the
    reason; the admin's list shows it as `operator`, not as a practice session."""
    done: list[str] = []

    async def work(directory: Directory, training: Training) -> None:
        user = await directory.storage.get_user(username)
        if user is None or user.org_id != org:
            raise ConfigError(f"no user {username!r} in organisation {org!r}")
        record = await training.record_by_operator(Grant.operator(org), user, reason)
        done.append(f"Recorded training of {username} (policy version {record.policy_version}).")

    _run_training(data_dir, work)
    typer.echo(done[0])


def main() -> None:
    app()
