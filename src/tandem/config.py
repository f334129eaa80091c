"""Settings, read once into an immutable object. Every limit is a named field with a doc line.

Precedence: explicit arguments (the CLI) over environment variables (``TANDEM_*``) over defaults.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from tandem.exceptions import ConfigError

LIST_SETTINGS = ("allow_origins", "console_origins", "public_origins", "trusted_proxies")
"""Settings given as lists, where an empty override means "not given"."""

NUMBER_SETTINGS = {
    "login_idle_seconds": "TANDEM_LOGIN_IDLE_SECONDS",
    "login_ttl_seconds": "TANDEM_LOGIN_TTL_SECONDS",
    "advisory_max_age_days": "TANDEM_ADVISORY_MAX_AGE_DAYS",
    "audit_anchor_max_age_days": "TANDEM_AUDIT_ANCHOR_MAX_AGE_DAYS",
}
"""Numeric settings an operator tunes through the environment (compliance profiles ask for
them; docs/compliance.md). Every other numeric setting (every limit) is read from
``TANDEM_<NAME>`` too, e.g. ``TANDEM_MAX_SESSIONS`` (docs/configuration.md)."""

NUMBER_KINDS: dict[str, type[int] | type[float]] = {
    "int": int,
    "int | None": int,
    "float": float,
    "float | None": float,
}
"""How a numeric field's value is read from its environment variable."""

POSITIVE_SETTINGS = frozenset(
    {
        "code_ttl_seconds",
        "max_control_bytes",
        "max_payload_bytes",
        "first_message_timeout_seconds",
        "agent_idle_seconds",
        "agent_reauth_seconds",
        "idle_timeout_seconds",
        "max_session_seconds",
        "login_backoff_seconds",
        "setup_sign_in_seconds",
        "temporary_password_seconds",
        "account_activity_days",
        "login_backoff_max_seconds",
        "site_verification_timeout_seconds",
        "backoff_forget_seconds",
        "customer_token_max_seconds",
        "max_recording_bytes",
        "recording_flush_bytes",
        "recording_backlog_bytes",
        "recording_backlog_total_bytes",
        "recheck_concurrency",
        "background_backoff_seconds",
        "background_backoff_max_seconds",
        "gc_collect_seconds",
        "refusal_audit_window_seconds",
        "refusal_budget_timeout_seconds",
        "audit_backlog_max_bytes",
        "transport_note_wait_seconds",
        "database_pool_size",
        "close_notice_seconds",
        "hurried_stop_seconds",
        "shutdown_reserve_seconds",
    }
)
"""Numeric settings whose 0 means nothing sensible (a check every 0 seconds spins, a largest
frame of 0 bytes refuses every frame): they must be above 0. Every numeric setting must be a
finite number, 0 or more (checked for all of them in ``Settings.__post_init__``)."""

MAX_INPUT_FILE_BYTES = 16 * 1024 * 1024
"""Default of ``Settings.max_input_file_bytes`` (for readers called without settings)."""

MAX_ADVISORY_FILE_BYTES = 64 * 1024 * 1024
"""Default of ``Settings.max_advisory_file_bytes`` (for readers called without settings)."""

SDK_PAYLOAD_BYTES = 512 * 1024
"""The largest payload the browsers put in one frame before they split it (``MAX_PAYLOAD_BYTES``
of sdk/src/shared/payload.ts; tests/test_config.py reads it from there)."""

SDK_FRAME_BYTES = SDK_PAYLOAD_BYTES + 1024
"""The largest binary frame the browsers send: a payload of :data:`SDK_PAYLOAD_BYTES`
deflated (at worst a few bytes more than its text, as stored blocks), its format byte, and the
channel's kind, epoch, counter and tag. ``max_payload_bytes`` may not be below it: the sockets
of every session whose page sends a large batch would be closed (1009), the two sides
disagreeing without a word."""

CONTROL_MESSAGE_BYTES = 4096
"""The size the control (text) messages are built to fit, a customer's first with its token
of up to 2048 characters included (tandem.protocol.messages): ``max_control_bytes`` may not be
below it, else sessions with a customer token would be refused (1009)."""

CONSOLE_AUDIT_PAGE = 50
"""Records the console's audit trail page asks ``GET /api/audit/search`` for at once (``PAGE``
in sdk/src/console/office.ts): it takes a shorter page for the trail's end, so
``max_audit_search`` may not be below it (tests/test_config.py reads the SDK's)."""

CONSOLE_RECORDINGS_LIST = 200
"""Recordings the console's list asks ``GET /api/recordings`` for (``limit=200`` in
sdk/src/console/recordings.ts), unpaged: ``max_recording_list`` may not be below it, else the
console would show fewer without a word."""

RECORDING_LIST_MOST = 100_000
"""Largest ``max_recording_list``, and the largest ``limit`` ``GET /api/recordings`` takes (one
above the setting is cut to it)."""

MAX_SECONDS = 10 * 365 * 86400.0
"""Largest duration any ``*_seconds`` setting may have (ten years); ``*_days`` settings are
bounded alike. Larger ones (1e308) overflow the date arithmetic they feed."""


LOGIN_BINDINGS = ("any", "browser", "network", "both")
"""Values of :attr:`Settings.login_bind_client`."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to know, validated."""

    host: str = "127.0.0.1"
    """Interface to listen on (TANDEM_HOST)."""
    port: int = 8000
    """TCP port (TANDEM_PORT)."""
    data_dir: Path = Path("data")
    """Directory for the SQLite database (TANDEM_DATA_DIR)."""
    database_url: str | None = dataclasses.field(default=None, repr=False)
    """PostgreSQL DSN for scale-out (TANDEM_DATABASE_URL); default: SQLite in data_dir."""
    redis_url: str | None = dataclasses.field(default=None, repr=False)
    """Redis for the fan-out between several processes (TANDEM_REDIS_URL; docs/scale-out.md)."""
    redis_prefix: str = "tandem:"
    """Prefix of Tandem's Redis channels (TANDEM_REDIS_PREFIX): one per deployment sharing a
    Redis."""
    allow_origins: tuple[str, ...] = ()
    """Extra origins whose pages may open customer sessions (TANDEM_ALLOW_ORIGINS, comma separated).
    The server's own origin is always allowed."""
    console_origins: tuple[str, ...] = ()
    """Other origins that may host the agent console (TANDEM_CONSOLE_ORIGINS, comma separated):
    their pages may call /api/* with the agent's cookie (CORS) and open the agent socket. The
    sign-in cookie is SameSite=Strict, so only origins of the server's own site can sign in
    (docs/deployment.md, "Serving the console from your own origin")."""
    public_origins: tuple[str, ...] = ()
    """The origins browsers reach this server at, as they see them (TANDEM_PUBLIC_ORIGINS, comma
    separated; e.g. ``https://tandem.example.com``). Set, a request or WebSocket addressed to
    any other (its scheme and ``Host`` header) is refused with 421 before anything reads it,
    but for the probes (/healthz, /readyz, /metrics); absolute URLs (the identity provider's
    redirect URI) are built from them, never from the ``Host`` header. Unset, any ``Host`` is
    answered (docs/deployment.md, "The server's public origin")."""

    tls_cert: Path | None = None
    """PEM certificate chain; with ``tls_key``, serve HTTPS/WSS itself (TANDEM_TLS_CERT)."""
    tls_key: Path | None = None
    """PEM private key for ``tls_cert`` (TANDEM_TLS_KEY)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of reverse proxies whose X-Forwarded-Proto/-For headers are believed
    (TANDEM_TRUSTED_PROXIES, comma separated). Empty: no proxy headers are trusted."""

    policy_file: Path | None = None
    """The organisation's masking policy (JSON, docs/privacy.md); it can only add restrictions to
    a site's own policy (TANDEM_POLICY)."""

    audit_key_file: Path | None = None
    """Key that anchors the audit chain (HMAC). Keep it outside the data directory in production
    (TANDEM_AUDIT_KEY); default: ``<data dir>/audit.key``, created on first start."""
    audit_anchor_every: int = 100
    """Anchor the audit chain every this many records (and at the first record and at shutdown).
    Each anchor records the interval it was written with, so changing it later keeps old trails
    verifiable; ``tandem audit verify`` uses it only for anchors written before they were chained
    (docs/audit.md)."""
    audit_backlog_max_bytes: int = 16 * 1024 * 1024
    """Largest the data directory's ``audit-backlog.jsonl`` (audit records of changes made that
    the database refused, kept until it takes them) may grow (TANDEM_AUDIT_BACKLOG_MAX_BYTES);
    a record past it is held in memory only (logged). A larger file is refused at start, not read
    into memory: a server never writes one."""

    code_ttl_seconds: float = 600.0
    """How long an unused join code stays valid."""
    code_digits: int = 5
    """Digits of the routing part of a join code, which the server issues. The customer's browser
    appends a 7-digit secret part that never reaches the server (docs/threat-model.md)."""
    max_control_bytes: int = 4096
    """Largest control (text) frame accepted from a peer (at least
    :data:`CONTROL_MESSAGE_BYTES`, what the browsers' messages are built to fit)."""
    max_payload_bytes: int = 1024 * 1024
    """Largest payload (binary) frame accepted from a peer; the SDK splits larger batches (at
    least :data:`SDK_FRAME_BYTES`, the largest frame the browsers send)."""
    socket_queue_bytes: int = 8 * 1024 * 1024
    """Bytes queued for one socket (its frames' data, plus 64 each) before its peer is closed as
    too slow (1013); at least ``max_payload_bytes`` + 64. A tunnelled process's queue for all its
    tunnels holds 32 times this."""
    socket_send_timeout_seconds: float = 10.0
    """A send to a socket that does not complete in this long (a peer that stopped reading)
    closes it as too slow (1013). An HTTP answer the client stops taking for this long (what
    is left to send does not go down) has its connection dropped."""
    http_request_timeout_seconds: float = 10.0
    """How long an HTTP request's line, headers and body may take to arrive, from its first
    byte (a new connection's: from opening); a slower one gets 408 and its connection closes."""
    max_request_body_bytes: int = 64 * 1024
    """Largest JSON body of a signed-in request to the API (a site's or a team's masking
    policy, an account, the single sign-on settings; TANDEM_MAX_REQUEST_BODY_BYTES, 4096 to
    64 MiB): a larger one is answered 413, unread. A sign-in's body, read before anyone is
    signed in, keeps its own 4 KiB (tandem.server.http.MAX_BODY_BYTES); the privacy policy
    text has its own (``max_policy_text_chars``)."""
    http_max_header_bytes: int = 64 * 1024
    """Largest request line and headers of one HTTP request (cookies included); a larger one is
    answered 431 at once and its connection closed."""
    first_message_timeout_seconds: float = 10.0
    """How long a new socket (a customer's or an agent's) may stay silent before its first
    message."""
    agent_idle_seconds: float = 10 * 60.0
    """An agent socket not in a session (neither joined nor watching) that sends nothing for this
    long is closed (4408)."""
    agent_reauth_seconds: float = 30.0
    """How often every open agent or supervisor socket's sign-in, account and role, and in a
    session its teams against the site's, are checked again (also on every join, watch and
    record, and at once when a sign-in is revoked or an account's or a site's teams change)."""
    resume_grace_seconds: float = 30.0
    """How long a customer's page may be away (navigation, reload) before the session ends."""
    agent_resume_seconds: float = 30.0
    """How long a joined agent whose console reloaded or lost its network may take the session
    up again (``rejoin``) before it ends ``agent_lost``; 0 ends it at once."""
    idle_timeout_seconds: float = 30 * 60.0
    """A joined session with no traffic either way for this long ends (`idle_timeout`)."""
    max_session_seconds: float = 4 * 3600.0
    """No session lasts longer than this (`max_duration`)."""
    login_ttl_seconds: float = 8 * 3600.0
    """An agent's sign-in lifetime (TANDEM_LOGIN_TTL_SECONDS)."""
    login_idle_seconds: float = 30 * 60.0
    """A sign-in unused for this long ends, besides its absolute lifetime
    (TANDEM_LOGIN_IDLE_SECONDS; PCI DSS 8.2.8 asks for 15 minutes at most)."""
    login_touch_seconds: float = 60.0
    """A sign-in's last use is written at most this often (TANDEM_LOGIN_TOUCH_SECONDS): a
    sign-in in use may idle out up to this much early; 0 writes at every use (a database write
    per request and socket message). Below ``login_idle_seconds``."""
    setup_sign_in_seconds: float = 15 * 60.0
    """A half sign-in (the password alone, for an account that must still set up its second
    factor or choose a new password: all it may do) ends this long after it was made, sooner
    than ``login_ttl_seconds``: it is for finishing the set-up at once, not for keeping."""
    temporary_password_seconds: float = 72 * 3600.0
    """A temporary password (an admin's new account or reset, ``tandem user passwd``) signs in
    only this long after it was set: an account made and never claimed keeps no usable password.
    Later it is refused, saying to ask an admin for a new one (``temporary_password_expired``)."""
    account_activity_days: float = 30.0
    """How far back an agent's console shows, at each sign-in, what happened to the account
    (its sign-ins, and resets or bindings an admin or the operator made: docs/security.md)."""
    login_free_failures: int = 3
    """Wrong passwords per account (and per address) before back-off starts. While an address
    waits, only accounts that have failed themselves are refused (docs/security.md)."""
    login_backoff_seconds: float = 1.0
    """First back-off; it doubles with each further failure."""
    login_backoff_max_seconds: float = 900.0
    """Longest back-off."""
    password_hash_parallel: int = 2
    """Password hashes (argon2id: about a tenth of a second of CPU and 64 MiB each, for every
    sign-in, password change and new account) computed at once, each in a worker thread off the
    event loop, so that sign-ins never stall live sessions."""
    password_hash_waiting: int = 32
    """Sign-ins (and password changes) that may wait for a hash beyond those computed; more are
    refused at once with 503 and Retry-After."""
    password_hash_per_client: int = 4
    """Hashes one client address (an IPv6 address with its /64) may have computed or waiting at
    once; more of its sign-ins are refused at once with 503, so one address cannot keep the
    others' sign-ins waiting."""
    test_private_network: bool = False
    """Tests only (no option or variable sets it): lets the server talk to an identity provider
    over plain http on loopback or a private network. Off, providers must be https on public
    hosts (docs/security.md, server-side request forgery)."""
    site_verification_timeout_seconds: float = 10.0
    """Deadline of the fetch of a site's /.well-known/tandem-verification (whole request), and
    of the DNS TXT lookup of ``_tandem-verification.<host>``."""
    site_verification_nameservers: tuple[str, ...] = ()
    """Resolvers asked for a site's DNS TXT proof (``address`` or ``address:port``, IPv6 as
    ``[address]:port``; TANDEM_SITE_VERIFICATION_NAMESERVERS, comma-separated). Empty: the
    system's (/etc/resolv.conf)."""
    backoff_forget_seconds: float = 3600.0
    """A back-off count (sign-in, join code, SSO start) is forgotten this long after its last
    failure. Counts decay this way only: a success never clears them."""
    join_free_failures: int = 5
    """Wrong join codes per agent account and per client address before back-off starts (it
    doubles from ``throttle_backoff_seconds`` to ``throttle_backoff_max_seconds``);
    reconnecting does not reset it."""
    throttle_backoff_seconds: float = 2.0
    """First wait of the join-code and SSO-start throttles (per account, address and
    organisation), doubling with each further failure."""
    throttle_backoff_max_seconds: float = 600.0
    """Longest wait of the join-code and SSO-start throttles."""
    sso_free_starts: int = 10
    """Sign-ins through an identity provider one client address may start without finishing
    before it backs off (each keeps a pending row for 10 minutes)."""
    sso_max_signing_keys: int = 20
    """Keys an identity provider's key set (JWKS) may publish; a larger set is refused. Only the
    keys named by an ID token's key id are read: an organisation's provider publishing a
    megabyte of keys made every sign-in of its own read them all, on the server's event loop
    (half a second each), stalling every live session."""
    sso_timeout_seconds: float = 10.0
    """Deadline of each request to an identity provider, whole (the name's look-up, connecting,
    sending, reading the entire answer): a provider that does not answer in time fails the
    sign-in (``sso_failed``) rather than holding it."""
    sso_max_response_bytes: int = 1 << 20
    """Largest answer taken from an identity provider (discovery, token, key set); a larger one
    fails the sign-in unread."""
    sso_clock_leeway_seconds: int = 60
    """Clock skew tolerated between this server and an identity provider on an ID token's
    ``exp`` and ``iat``."""
    sso_max_token_age_seconds: int = 600
    """An ID token issued longer ago than this (plus the leeway) is refused, even if not expired."""
    sso_pending_seconds: float = 600.0
    """How long a sign-in started at an identity provider may take to come back (its pending
    row and the browser's cookie last this long)."""
    customer_token_max_seconds: float = 600.0
    """Longest lifetime (exp - iat) of a customer token a site's backend may sign."""
    customer_token_leeway_seconds: int = 30
    """Clock skew tolerated between this server and a site's backend on a customer token's
    ``exp`` and ``iat`` (TANDEM_CUSTOMER_TOKEN_LEEWAY_SECONDS, 0 to 300). A single-use token's
    ``jti`` is kept this long (and 30 s more) past its ``exp``, so a larger leeway cannot let it
    be replayed."""
    join_org_free_failures: int = 50
    """Wrong join codes across one organisation before an alert is audited and its agents that
    have entered a wrong code themselves back off (an agent without failures is not slowed):
    a brake on guessing spread over many accounts and addresses."""
    max_agent_sockets: int = 20
    """Agent and supervisor sockets one account may hold open at once in one server process
    (console tabs, reconnects); more are refused (4429). Each costs memory and a sign-in check
    every ``agent_reauth_seconds``."""
    refusal_audit_burst: int = 20
    """Refused attempts of one signed-in account (a 403 of the API, a 404 of a recording, a
    refused agent socket or socket message) recorded in full per
    ``refusal_audit_window_seconds`` in one server process
    (``access_refused``, ``recording_refused``, ``message_refused``); the rest of the window's
    are counted in one ``access_refused_summary`` record when it ends, so that one account
    cannot flood the audit trail."""
    refusal_audit_window_seconds: float = 60.0
    """The window of ``refusal_audit_burst``: it starts at an account's first refusal."""
    refusal_budget_timeout_seconds: float = 0.25
    """With several processes, how long a refusal's answer (a 403, a refused socket) may wait
    for the shared refusal budget's count in Redis before it is weighed against this process's
    own budget instead (TANDEM_REFUSAL_BUDGET_TIMEOUT_SECONDS): a frozen Redis held every 403
    for ``redis_timeout_seconds``. While it does not answer, one count at a time is tried
    again, the other refusals answered at once."""
    max_join_attempts_per_socket: int = 5
    """Wrong codes one agent socket may try before it is closed (4429)."""
    close_timeout_seconds: float = 5.0
    """How long a socket may take to flush its last frames when its session ends."""
    close_notice_seconds: float = 2.0
    """How long the last notice sent before the server closes a socket (why it is closed: a
    sign-in revoked, a session taken over) may wait for the peer to read it before the close
    goes without it (TANDEM_CLOSE_NOTICE_SECONDS, at most 60)."""
    shutdown_timeout_seconds: float = 15.0
    """On SIGTERM, how long the server may take to tell every socket, end its sessions, flush
    recordings and anchor the audit trail before it exits (``--shutdown-timeout``)."""
    hurried_stop_seconds: float = 2.0
    """What is left of a stop once Ctrl-C is pressed again (TANDEM_HURRIED_STOP_SECONDS, at most
    60; a stop with less left keeps its own deadline): the waits for sockets end at once, and
    what the stop still writes (the hand-overs under way, the recordings' last frames,
    ``server_stopped``) has this long; what the database does not take is kept in the audit
    backlog."""
    shutdown_reserve_seconds: float = 2.0
    """Of ``shutdown_timeout_seconds``, what Tandem's part of a stop leaves to uvicorn (closing
    the connections left) and the lifespan (anchoring the audit trail)
    (TANDEM_SHUTDOWN_RESERVE_SECONDS); Tandem's part keeps at least half the timeout however
    large this is."""
    shutdown_hand_over_share: float = 0.75
    """Of the stop's time, the share the sessions' hand-overs may take to be stored (side by
    side); the rest is for the sockets to take their last frames and close, and for what the
    stop writes after them. A session not stored within it is cut (docs/operations.md)."""
    max_sessions: int = 10_000
    """Live sessions held at once by this process; more are refused (4503)."""
    max_sessions_per_org: int | None = None
    """Live sessions one organisation may hold at once; more of its customers are refused
    (4503) while other organisations' still get sessions. Counted across every process sharing
    the database when set (docs/scale-out.md). None: a fair share of this process, its
    ``max_sessions`` divided by the number of organisations (at least 1)."""
    max_watcher_frames_per_second: int = 10
    """Frames a watching supervisor's socket may send in a second (its freshness challenges: one
    every 3 s, and one when its tab is shown again); one more closes its socket (4429) and ends
    the watch. The customer's browser answers at most 4 a second anyway; this keeps a supervisor
    from making the customer's page open frames without bound."""
    max_waiting_per_address: int = 10
    """Customer sessions not yet consented to (waiting for an agent, or asking the customer)
    that one client address may hold at once; more are refused (4429). The address is the
    socket's peer, or the X-Forwarded-For of a ``trusted_proxies`` proxy; an IPv6 address counts
    with its /64."""
    max_unheard_sockets_per_address: int = 20
    """Customer sockets one client address (an IPv6 address with its /64) may hold open before
    their first message (each waits up to ``first_message_timeout_seconds``); more are refused
    (4429)."""
    max_waiting_per_site: int = 500
    """Customer sessions not yet consented to that one site may hold at once; more are
    refused (4429). Counted across every process sharing the database."""
    anonymous_audit_interval_seconds: float = 60.0
    """Events with no signed-in actor (refused customer sockets, bad origins, rejected
    customer tokens) are counted, not written one record each: one ``audit_counts`` row per
    interval, kind and organisation (docs/audit.md)."""
    anonymous_audit_retention_days: float = 90.0
    """How long the counts of events with no signed-in actor are kept."""
    max_recording_bytes: int = 256 * 1024 * 1024
    """Largest recording (ciphertext bytes); there the customer's browser is asked to end it
    (`size_limit`), the session goes on."""
    max_recording_downloads: int = 2
    """Recordings' files (played, exported, or in a subject's export) built and sent at once in
    one process; more are refused (503, Retry-After). Each holds up to ``max_recording_bytes``
    twice in memory until it is sent."""
    max_subject_export_bytes: int = 1024 * 1024 * 1024
    """A customer's export (tandem subject export) holds their recordings up to this many bytes
    in all; the others are listed in its manifest, to be exported one by one. The archive is
    built in memory, twice this at most."""
    subject_export_attempts: int = 3
    """How many times a customer's export (tandem subject export, ``POST
    /api/subjects/export``) finds the customer again when what concerns them changed while it
    was exported (a new session or recording, one ended or erased), before it answers 409 (ask
    again): a live customer's page reporting again and again. 1 to 10
    (TANDEM_SUBJECT_EXPORT_ATTEMPTS)."""
    max_recording_overdue_seconds: float = 600.0
    """A recording still stored this long past its organisation's retention (under no legal
    hold) fails the compliance check's retention item, named: the recordings' purge runs every
    ``recording_purge_seconds`` and skips only one a reader holds then (a transaction left open
    holds it at every run). At least ``recording_purge_seconds``, the purge's interval
    (TANDEM_MAX_RECORDING_OVERDUE_SECONDS)."""
    recording_purge_seconds: float = 60.0
    """How often recordings past their organisation's retention are looked for and erased
    (TANDEM_RECORDING_PURGE_SECONDS): an expired recording is erased up to this long late (it is
    played and exported no more from its expiry on). At most ``max_recording_overdue_seconds``."""
    max_retention_clock_skew_seconds: float = 3600.0
    """How far ahead of a server's own clock the recordings' purges' clock (the latest moment a
    purge ran at, noted in the database) is believed when the server judges whether a
    recording is past its retention: a server whose clock is behind plays and exports nothing a
    purge found expired, up to this much behind. A clock set further ahead is believed only this
    far, so it cannot have every server refuse every recording (0: each server's own clock
    alone; TANDEM_MAX_RETENTION_CLOCK_SKEW_SECONDS)."""
    recording_end_bytes: int = 1024 * 1024
    """How much more a recording may take past `max_recording_bytes` while the customer's end
    marker is on its way; beyond it the recording is cut (and plays as truncated)."""
    recording_end_seconds: float = 10.0
    """How long the server waits for the customer's end marker once a recording is to end (the
    agent stopped it, the size limit, the session ends gracefully); then it closes it without."""
    recording_flush_bytes: int = 256 * 1024
    """A recording's frames are written to storage when this much is waiting (else each second)."""
    recheck_concurrency: int = 8
    """How many agents' and supervisors' sockets are re-checked against storage at once (a
    revocation announced, the periodic re-check): one after another, with a slow database the
    last of many was closed late; all at once, they would take every pooled connection."""
    recording_backlog_bytes: int = 32 * 1024 * 1024
    """How much of a recording may wait in memory while its last write to storage is still under
    way (a slow or frozen database); beyond, the recording stops (`unavailable`) and sharing goes
    on: the customer's frames never wait for the database."""
    recording_backlog_total_bytes: int = 256 * 1024 * 1024
    """How much of all this process's recordings may wait in memory so (the sum of their
    backlogs, and of the frames their writes under way hold): beyond, the recording whose frame
    comes next stops (`unavailable`) as when its own backlog is full. Each recording's bound
    alone let the backlogs of ``max_sessions`` recordings grow to ``recording_backlog_bytes``
    each while the database was frozen."""
    upgrade_copy_days: float = 7.0
    """SQLite only: the copy of the database the server makes before it upgrades its schema
    (``tandem.sqlite3.<time>.bak`` beside it) is deleted this long after it was made (at the next
    purge). It holds every customer's data as it was, also what is erased or purged since."""
    transport_note_recheck_seconds: float = 60.0
    """Once a request over plain HTTP was noted for the compliance check (in the database,
    :data:`PLAIN_HTTP_NOTE`), how often a later one looks whether the note is still there, and
    notes it again if the operator removed it (``tandem compliance forget-plain-http``) while
    the proxy still forwards plain HTTP (0: every such request). Likewise for the note of a
    reverse proxy's header seen while no public origin is set (:data:`PROXY_NOTE`, ``tandem
    compliance forget-proxy``)."""
    transport_note_wait_seconds: float = 1.0
    """How long the request that makes or rechecks one of those notes waits for the database
    (TANDEM_TRANSPORT_NOTE_WAIT_SECONDS); the note goes on being written beside it after that.
    Awaited in full, a frozen database held that request (a probe, the SDK's script) for
    ``database_timeout_seconds``, and the next one again."""
    purge_interval_seconds: float = 60.0
    """How often expired join codes, sign-ins, pending single sign-ons, single-use marks and
    back-off counts, and ended sessions past their organisation's retention, are deleted. Each is
    checked for expiry where it is used, so this bounds only how long the rows linger."""
    sqlite_busy_seconds: float = 10.0
    """SQLite only: how long a statement waits for another connection's write lock (an
    operator's ``sqlite3`` shell, a VACUUM) before it fails (TANDEM_SQLITE_BUSY_SECONDS)."""
    database_vacuum_timeout_seconds: float = 600.0
    """PostgreSQL only: how long one ``VACUUM`` of a table that an erasure, a purge or a
    session's end deleted rows of may run before it is cancelled; it is tried again, with the
    tables after it, at the vacuum task's next turn (tandem.storage.sql.SQLStorage.
    vacuum_deleted)."""
    allow_origin_attempts: int = 3
    """How many times ``tandem serve`` tries to hold each ``--allow-origin`` origin for the
    default organisation at start-up while other servers of the deployment, starting beside it,
    add or approve the same origins (TANDEM_ALLOW_ORIGIN_ATTEMPTS, 1 to 10); then the start
    fails."""
    database_vacuum_interval_seconds: float = 10.0
    """PostgreSQL only: the vacuum task's rounds (each table rows were deleted from since the
    last) begin at most this often: what is erased leaves dead tuples for about this long."""
    database_timeout_seconds: float = 30.0
    """PostgreSQL only: how long one statement, a new connection, or the wait for a free pooled
    connection may take before it fails (a database that stops answering without closing
    anything: a network partition, a stalled host). HTTP answers 503, a socket 1013, background
    tasks try again (TANDEM_DATABASE_TIMEOUT_SECONDS)."""
    database_pool_size: int = 10
    """PostgreSQL only: connections each process keeps to the database at most
    (TANDEM_DATABASE_POOL_SIZE); a statement waits for a free one up to
    ``database_timeout_seconds``. Must leave room for the recordings' readers
    (``max_recording_downloads``, which may all wait behind an erasure, each on a connection of
    its own, with the erasure on one more) and the sockets' re-checks (``recheck_concurrency``):
    either at the pool's size or above let them take every connection while they waited, and
    sign-ins, sessions and the audit trail of the process waited for them. Each connection is a
    server process of PostgreSQL: count them for all servers against its ``max_connections``."""
    database_migration_timeout_seconds: float = 600.0
    """PostgreSQL only: how long bringing the schema up to date at start-up may take as a whole,
    waiting for another server's migration (the advisory lock) included; longer than
    ``database_timeout_seconds`` because a revision may rewrite a large table. Past it the
    migration is abandoned (its transaction rolls back: the schema stays as it was) and the
    command fails (TANDEM_DATABASE_MIGRATION_TIMEOUT_SECONDS)."""

    advisory_file: Path | None = None
    """Security advisories in OSV JSON that the operator fetches (TANDEM_ADVISORY_FILE):
    `tandem security status` and the admin API compare the shipped SBOM against it
    (docs/security-updates.md)."""
    advisory_max_age_days: float = 7.0
    """An advisory file older than this is stale: the server logs a warning and admins see a
    banner (TANDEM_ADVISORY_MAX_AGE_DAYS)."""
    advisory_check_seconds: float = 3600.0
    """How often the server re-reads the advisory file and warns (also at start)."""
    max_advisory_file_bytes: int = MAX_ADVISORY_FILE_BYTES
    """Largest advisory file read (TANDEM_MAX_ADVISORY_FILE_BYTES, at least 1 MiB): a larger
    one is reported as a problem, unread. Parsed whole, in a worker thread that still holds the
    interpreter while it parses (live sessions wait), so raise it only as far as the OSV export
    of what ships needs."""
    compliance_audit_check_seconds: float = 300.0
    """How long an admin's compliance report (``GET /api/compliance``) reuses the last check of
    the whole audit trail (one at a time in each process, whatever the requests). ``tandem
    compliance check`` and ``tandem audit verify`` check it anew each time."""
    audit_anchor_max_age_days: float = 1.0
    """`tandem compliance check` fails when audit records older than this are covered by
    neither an anchor nor an external checkpoint (TANDEM_AUDIT_ANCHOR_MAX_AGE_DAYS)."""
    background_backoff_seconds: float = 1.0
    """First pause before a failed background task (deadlines, purges, heartbeats, tunnel
    entrance) runs again; it doubles with each further failure."""
    background_backoff_max_seconds: float = 30.0
    """Longest pause between runs of a failing background task."""
    unavailable_retry_seconds: float = 5.0
    """``Retry-After`` of the 503 answered while the database does not answer."""
    gc_freeze_seconds: float = 60.0
    """`tandem serve`: how often objects that survived are frozen out of the garbage collector's
    full collections (tandem.heap); 0 turns the collector tuning off."""
    gc_collect_seconds: float = 3600.0
    """`tandem serve`: how often one full collection reclaims cyclic garbage that was frozen."""
    heartbeat_seconds: float = 5.0
    """How often each server process marks itself alive in the database
    (TANDEM_HEARTBEAT_SECONDS)."""
    process_lost_seconds: float = 30.0
    """A process whose heartbeat is older than this is taken for dead: live processes end its
    sessions (``server_lost``) and close its recordings (``interrupted``)
    (TANDEM_PROCESS_LOST_SECONDS)."""
    tunnel_heartbeat_seconds: float = 1.0
    """How often each end of a tunnel (a socket carried to another process, docs/scale-out.md)
    tells the other it is alive and what it received (TANDEM_TUNNEL_HEARTBEAT_SECONDS)."""
    tunnel_lost_seconds: float = 5.0
    """An end that hears nothing from the other this long, while its own Redis connection is
    up, takes that process for dead: the socket it carries is told and closed
    (TANDEM_TUNNEL_LOST_SECONDS)."""
    tunnel_outage_seconds: float = 30.0
    """How long a tunnel waits for Redis to come back (frames held, then resent) before its
    socket is closed 1013 "server link lost" and told to reconnect
    (TANDEM_TUNNEL_OUTAGE_SECONDS)."""
    tunnel_accept_seconds: float = 5.0
    """How long a process that carries a socket for the process holding its session (a
    tunnel's edge) waits for that process to take it: then the socket is told the session is
    not found (4404) if Redis answers, or that the server link is lost (1013) if not
    (TANDEM_TUNNEL_ACCEPT_SECONDS)."""
    readiness_timeout_seconds: float = 2.0
    """A dependency that takes longer than this to answer ``/readyz`` counts as down."""
    tunnel_buffer_bytes: int = 8 * 1024 * 1024
    """Frames a tunnel's end keeps until the other end confirmed them (to resend what a Redis
    outage lost); past it the socket is closed as for an outage too long."""
    redis_buffer_bytes: int = 64 * 1024 * 1024
    """Bytes waiting to be sent to Redis (a frozen or restarting Redis) before further frames
    are dropped (TANDEM_REDIS_BUFFER_BYTES); tunnels resend what was dropped."""
    redis_timeout_seconds: float = 5.0
    """How long connecting to Redis, one of its replies, or the answer to a PING may take
    (TANDEM_REDIS_TIMEOUT_SECONDS): a Redis that accepts connections but never answers stops
    ``tandem serve`` within a few of these, and a running server takes it for gone."""
    metrics_token: str | None = dataclasses.field(default=None, repr=False)
    """Bearer token that opens ``/metrics`` (TANDEM_METRICS_TOKEN); without it (and without
    ``metrics_port``) metrics are not served."""
    metrics_port: int | None = None
    """Serve ``/metrics`` on this port of ``metrics_host`` instead, without a token
    (TANDEM_METRICS_PORT)."""
    metrics_host: str = "127.0.0.1"
    """Interface of ``metrics_port`` (TANDEM_METRICS_HOST)."""
    log_format: str = "console"
    """``console`` (readable lines) or ``json`` (one JSON object a line) (TANDEM_LOG_FORMAT)."""
    login_bind_client: str = "any"
    """Bind each agent sign-in to the browser that made it (TANDEM_LOGIN_BIND_CLIENT): ``any``
    (not bound: its cookie works from any client), ``browser`` (its User-Agent), ``network``
    (its address's IPv4 /24 or IPv6 /64) or ``both``.
    A sign-in's cookie used from another is ended, and recorded (docs/security.md)."""
    training_interval_days: int = 365
    """Default re-training interval (PCI DSS 12.6.3: at least once every 12 months); each
    organisation may set its own (docs/training.md)."""
    practice_ticket_seconds: float = 900.0
    """How long a practice ticket (the console's start of a practice exercise) may be used."""
    max_waiting_practice_per_account: int = 3
    """Practice sessions (docs/training.md) one account may hold waiting at once, across a
    cluster (each server adds what storage says waits on the others); more are refused (4429).
    Every organisation's practice sessions are counted under the server's own practice site,
    against ``max_waiting_per_site`` and the account's organisation's quota: without this, one
    account's tickets could take them all."""
    max_input_file_bytes: int = MAX_INPUT_FILE_BYTES
    """Largest file an operator names that is read whole: the masking policy, a checkpoint file
    (``--checkpoint``), a recording key (TANDEM_MAX_INPUT_FILE_BYTES). A larger one is refused
    in one line rather than read into memory (a wrong path naming a disk image)."""
    max_policy_text_chars: int = 20000
    """Longest privacy and security policy text an admin may store (characters)."""
    max_audit_page: int = 1000
    """Audit records ``GET /api/audit`` answers at once (a larger ``limit`` is cut to it), and
    counts of events with no signed-in actor ``GET /api/audit/counts`` answers
    (TANDEM_MAX_AUDIT_PAGE, 10 to 100000). Each page is read and sent whole."""
    max_audit_search: int = 100
    """Audit records ``GET /api/audit/search`` (the console's audit trail page) answers at once
    (TANDEM_MAX_AUDIT_SEARCH, from :data:`CONSOLE_AUDIT_PAGE`, the console's page, to 10000):
    each is matched against the search text in the database."""
    max_recording_list: int = 500
    """Recordings ``GET /api/recordings`` lists at once (a larger ``limit`` is cut to it;
    TANDEM_MAX_RECORDING_LIST, from :data:`CONSOLE_RECORDINGS_LIST`, what the console asks
    for, to 100000)."""
    max_account_activity: int = 50
    """The most records of each action an agent's console shows at each sign-in of what
    happened to the account (tandem.auth.account_activity; TANDEM_MAX_ACCOUNT_ACTIVITY, 10 to
    1000): each action counted apart, so that a flood of one cannot push another out of the
    owner's sight; at most 14 times this records in all."""
    audit_append_attempts: int = 1000
    """Attempts at appending one audit record while other servers on the same database take
    the next numbers first (each failed attempt means another server's record went in), before
    the append fails (TANDEM_AUDIT_APPEND_ATTEMPTS, 10 to 1000000)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            texts = value if isinstance(value, tuple) else (value,)
            # Bytes that are not UTF-8 on the command line or in the environment arrive as lone
            # surrogates: `--host` of one failed only at the bind, after the data directory and
            # its database had been made.
            if any(isinstance(t, str) and any("\ud800" <= c <= "\udfff" for c in t) for t in texts):
                raise ConfigError(f"{field.name} is not UTF-8 text")
        if not self.host.strip():
            raise ConfigError(
                "the host is empty: give an address (0.0.0.0 listens on every interface)"
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, not {self.port}")
        if not 4 <= self.code_digits <= 12:
            raise ConfigError("code_digits must be between 4 and 12")
        if self.audit_anchor_every < 1:
            raise ConfigError("audit_anchor_every must be at least 1")
        if not 0 <= self.agent_resume_seconds <= 600 or not 0 <= self.resume_grace_seconds <= 600:
            raise ConfigError("agent_resume_seconds and resume_grace_seconds must be 0 to 600")
        if not self.purge_interval_seconds > 0:
            raise ConfigError("purge_interval_seconds must be positive")
        if not self.transport_note_recheck_seconds >= 0:
            raise ConfigError("transport_note_recheck_seconds must be 0 or more")
        if not self.upgrade_copy_days > 0:
            raise ConfigError("upgrade_copy_days must be positive")
        if not self.sqlite_busy_seconds > 0:
            raise ConfigError("sqlite_busy_seconds must be positive")
        if not self.database_vacuum_interval_seconds >= 0:
            raise ConfigError("database_vacuum_interval_seconds must be 0 or more")
        if not self.database_vacuum_timeout_seconds > 0:
            raise ConfigError("database_vacuum_timeout_seconds must be positive")
        if not self.database_timeout_seconds > 0:
            raise ConfigError("database_timeout_seconds must be positive")
        if not self.redis_timeout_seconds > 0:
            raise ConfigError("redis_timeout_seconds must be positive")
        if not self.database_migration_timeout_seconds > 0:
            raise ConfigError("database_migration_timeout_seconds must be positive")
        if self.max_payload_bytes < SDK_FRAME_BYTES:
            raise ConfigError(
                f"max_payload_bytes must be at least {SDK_FRAME_BYTES}: the browsers send frames "
                "that large (a split batch's part)"
            )
        if self.max_control_bytes < CONTROL_MESSAGE_BYTES:
            raise ConfigError(
                f"max_control_bytes must be at least {CONTROL_MESSAGE_BYTES}: the browsers' "
                "control messages may be that large (a customer token among them)"
            )
        if self.socket_queue_bytes < max(self.max_payload_bytes, self.max_control_bytes) + 64:
            raise ConfigError("socket_queue_bytes must hold at least one largest frame (+64)")
        if not self.socket_send_timeout_seconds > 0:
            raise ConfigError("socket_send_timeout_seconds must be positive")
        if not self.http_request_timeout_seconds > 0:
            raise ConfigError("http_request_timeout_seconds must be positive")
        if not 4096 <= self.max_request_body_bytes <= 64 * 1024 * 1024:
            raise ConfigError("max_request_body_bytes must be from 4096 to 67108864 (64 MiB)")
        if self.http_max_header_bytes < 8192:
            raise ConfigError("http_max_header_bytes must be at least 8192")
        if not self.shutdown_timeout_seconds > 0:
            raise ConfigError("the shutdown timeout must be positive")
        if not 0 < self.shutdown_hand_over_share < 1:
            raise ConfigError("shutdown_hand_over_share must be between 0 and 1 (not either)")
        if self.max_sessions < 1 or (
            self.max_sessions_per_org is not None and self.max_sessions_per_org < 1
        ):
            raise ConfigError("max_sessions and max_sessions_per_org must be at least 1")
        if self.max_subject_export_bytes < 1:
            raise ConfigError("max_subject_export_bytes must be at least 1")
        if self.max_recording_downloads < 1:
            raise ConfigError("max_recording_downloads must be at least 1")
        if self.database_url and self.max_recording_downloads > self.database_pool_size - 2:
            raise ConfigError(
                f"max_recording_downloads ({self.max_recording_downloads}) must be at most "
                f"database_pool_size - 2 ({self.database_pool_size - 2}): recordings' readers "
                "waiting behind an erasure hold a pooled connection each, and the erasure and "
                "the rest of the process need theirs (raise database_pool_size, or lower "
                "max_recording_downloads)"
            )
        if self.database_url and self.recheck_concurrency >= self.database_pool_size:
            raise ConfigError(
                f"recheck_concurrency ({self.recheck_concurrency}) must be below "
                f"database_pool_size ({self.database_pool_size}): re-checks at once hold a "
                "pooled connection each"
            )
        if not 1 <= self.subject_export_attempts <= 10:
            raise ConfigError("subject_export_attempts must be between 1 and 10")
        if not 0 < self.recording_purge_seconds <= self.max_recording_overdue_seconds:
            raise ConfigError(
                "recording_purge_seconds must be above 0 and max_recording_overdue_seconds at "
                f"least as long (the recordings' purge runs every {self.recording_purge_seconds:g}"
                " s)"
            )
        if not 1 <= self.allow_origin_attempts <= 10:
            raise ConfigError("allow_origin_attempts must be between 1 and 10")
        if not 0 <= self.customer_token_leeway_seconds <= 300:
            raise ConfigError("customer_token_leeway_seconds must be from 0 to 300")
        if self.sso_max_signing_keys < 1:
            raise ConfigError("sso_max_signing_keys must be at least 1")
        if not 0 < self.sso_timeout_seconds <= 300:
            raise ConfigError("sso_timeout_seconds must be above 0 and at most 300")
        if self.sso_max_response_bytes < 1024:
            raise ConfigError("sso_max_response_bytes must be at least 1024")
        if not 0 <= self.sso_clock_leeway_seconds <= 600:
            raise ConfigError("sso_clock_leeway_seconds must be from 0 to 600")
        if self.sso_max_token_age_seconds < 60:
            raise ConfigError("sso_max_token_age_seconds must be at least 60")
        if not 60 <= self.sso_pending_seconds <= 86400:
            raise ConfigError("sso_pending_seconds must be from 60 to 86400")
        if self.max_agent_sockets < 1:
            raise ConfigError("max_agent_sockets must be at least 1")
        if not 0 < self.throttle_backoff_seconds <= self.throttle_backoff_max_seconds:
            raise ConfigError(
                "throttle_backoff_seconds must be above 0 and at most throttle_backoff_max_seconds"
            )
        if self.max_watcher_frames_per_second < 1:
            raise ConfigError("max_watcher_frames_per_second must be at least 1")
        if min(self.password_hash_parallel, self.password_hash_per_client) < 1 or (
            self.password_hash_waiting < 0
        ):
            raise ConfigError(
                "password_hash_parallel and password_hash_per_client must be at least 1, "
                "password_hash_waiting at least 0"
            )
        if self.max_unheard_sockets_per_address < 1:
            raise ConfigError("max_unheard_sockets_per_address must be at least 1")
        if min(self.max_waiting_per_address, self.max_waiting_per_site) < 1:
            raise ConfigError("max_waiting_per_address and max_waiting_per_site must be at least 1")
        if self.max_waiting_practice_per_account < 1:
            raise ConfigError("max_waiting_practice_per_account must be at least 1")
        if not min(self.anonymous_audit_interval_seconds, self.anonymous_audit_retention_days) > 0:
            raise ConfigError(
                "anonymous_audit_interval_seconds and anonymous_audit_retention_days must be "
                "positive"
            )
        if not 1 <= self.training_interval_days <= 3650 or not self.practice_ticket_seconds > 0:
            raise ConfigError(
                "training_interval_days must be from 1 to 3650 and practice_ticket_seconds positive"
            )
        if self.max_advisory_file_bytes < 1024 * 1024:
            raise ConfigError("max_advisory_file_bytes must be at least 1048576 (1 MiB)")
        if self.max_input_file_bytes < 1024:
            raise ConfigError("max_input_file_bytes must be at least 1024")
        if not 100 <= self.max_policy_text_chars <= 1_000_000:
            raise ConfigError("max_policy_text_chars must be from 100 to 1000000")
        if not 10 <= self.max_audit_page <= 100_000:
            raise ConfigError("max_audit_page must be from 10 to 100000")
        if not CONSOLE_AUDIT_PAGE <= self.max_audit_search <= 10_000:
            raise ConfigError(
                f"max_audit_search must be from {CONSOLE_AUDIT_PAGE} (the console's audit page) "
                "to 10000"
            )
        if not CONSOLE_RECORDINGS_LIST <= self.max_recording_list <= RECORDING_LIST_MOST:
            raise ConfigError(
                f"max_recording_list must be from {CONSOLE_RECORDINGS_LIST} (what the console "
                f"lists) to {RECORDING_LIST_MOST}"
            )
        if not 10 <= self.max_account_activity <= 1000:
            raise ConfigError("max_account_activity must be from 10 to 1000")
        if not 10 <= self.audit_append_attempts <= 1_000_000:
            raise ConfigError("audit_append_attempts must be from 10 to 1000000")
        if not 0 < self.close_notice_seconds <= 60:
            raise ConfigError("close_notice_seconds must be above 0 and at most 60")
        if not 0 < self.hurried_stop_seconds <= 60:
            raise ConfigError("hurried_stop_seconds must be above 0 and at most 60")
        if not 0 < self.shutdown_reserve_seconds <= 60:
            raise ConfigError("shutdown_reserve_seconds must be above 0 and at most 60")
        for nameserver in self.site_verification_nameservers:
            nameserver_address(nameserver)
        for proxy in self.trusted_proxies:
            trusted_proxy(proxy)
        object.__setattr__(
            self, "allow_origins", tuple(normalize_origin(o) for o in self.allow_origins)
        )
        object.__setattr__(
            self, "console_origins", tuple(normalize_origin(o) for o in self.console_origins)
        )
        object.__setattr__(
            self,
            "public_origins",
            tuple(dict.fromkeys(normalize_origin(o) for o in self.public_origins)),
        )
        scheme, _, _ = (self.database_url or "postgresql://").partition("://")
        if scheme.lower() not in ("postgresql", "postgres"):
            raise ConfigError("the database URL must start with postgresql:// (or postgres://)")
        if self.database_url is not None:
            database_name(self.database_url)
        if self.redis_url is not None:
            if self.redis_url.partition("://")[0].lower() not in ("redis", "rediss", "unix"):
                raise ConfigError("the Redis URL must start with redis://, rediss:// or unix://")
            if not self.database_url:
                raise ConfigError(
                    "--redis-url needs --database-url: several processes share one PostgreSQL"
                )
        if (
            not min(
                self.advisory_max_age_days,
                self.advisory_check_seconds,
                self.audit_anchor_max_age_days,
            )
            > 0
        ):
            raise ConfigError(
                "advisory_max_age_days, advisory_check_seconds and audit_anchor_max_age_days "
                "must be positive"
            )
        if not self.compliance_audit_check_seconds > 0:
            raise ConfigError("compliance_audit_check_seconds must be positive")
        if not self.login_idle_seconds > 0 or not self.login_ttl_seconds > 0:
            raise ConfigError("login_idle_seconds and login_ttl_seconds must be positive")
        if not 0 <= self.login_touch_seconds < self.login_idle_seconds:
            raise ConfigError(
                "login_touch_seconds must be 0 or more and below login_idle_seconds (a sign-in "
                "in use would idle out)"
            )
        if self.log_format not in ("console", "json"):
            raise ConfigError("the log format must be console or json")
        if self.login_bind_client not in LOGIN_BINDINGS:
            raise ConfigError(
                "login_bind_client must be one of "
                + ", ".join(LOGIN_BINDINGS)
                + f", not {self.login_bind_client!r}"
            )
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise ConfigError(f"metrics port must be between 1 and 65535, not {self.metrics_port}")
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ConfigError("the metrics port must differ from the server's port")
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise ConfigError("the metrics token must be at least 16 characters")
        if not 0 < self.heartbeat_seconds < self.process_lost_seconds:
            raise ConfigError("heartbeat_seconds must be positive and below process_lost_seconds")
        if not 0 < self.tunnel_heartbeat_seconds < self.tunnel_lost_seconds:
            raise ConfigError(
                "tunnel_heartbeat_seconds must be positive and below tunnel_lost_seconds"
            )
        if not 0 < self.tunnel_accept_seconds <= 300:
            raise ConfigError("tunnel_accept_seconds must be above 0 and at most 300")
        if not 0 < self.readiness_timeout_seconds <= 60:
            raise ConfigError("readiness_timeout_seconds must be above 0 and at most 60")
        if not self.tunnel_outage_seconds > 0:
            raise ConfigError("tunnel_outage_seconds must be positive")
        if self.tunnel_buffer_bytes < self.socket_queue_bytes:
            raise ConfigError("tunnel_buffer_bytes must be at least socket_queue_bytes")
        if self.redis_buffer_bytes < self.max_payload_bytes + 64:
            raise ConfigError("redis_buffer_bytes must hold at least one largest frame (+64)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{name.replace('_', '-')} file not found: {path}")
        for field in dataclasses.fields(self):
            if str(field.type) not in NUMBER_KINDS:
                continue
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{field.name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{field.name} must be a finite number, 0 or more, not {value}")
            if field.name in POSITIVE_SETTINGS and not value > 0:
                raise ConfigError(f"{field.name} must be above 0")
            longest = (
                MAX_SECONDS
                if field.name.endswith("_seconds")
                else MAX_SECONDS / 86400
                if field.name.endswith("_days")
                else None
            )
            if longest is not None and value > longest:
                raise ConfigError(f"{field.name} must be at most {longest:g}, not {value:g}")
        if self.login_backoff_seconds > self.login_backoff_max_seconds or (
            self.background_backoff_seconds > self.background_backoff_max_seconds
        ):
            raise ConfigError(
                "login_backoff_seconds and background_backoff_seconds must be at most their "
                "_max_seconds"
            )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def unnamed_exposure(self) -> str | None:
        """Why browsers may reach this server by names it does not know, with no
        ``public_origins`` set: it listens on an address other than loopback, or answers what
        a reverse proxy forwards (which passes on whatever ``Host`` the browser sent). None
        when public origins are set, or it listens on loopback only behind no proxy (``make
        run``, the tests)."""
        if self.public_origins:
            return None
        if not is_loopback(self.host):
            return f"it listens on {self.host}, not loopback only"
        if self.trusted_proxies:
            return "it answers a reverse proxy (--trusted-proxy), which forwards any Host"
        return None

    @property
    def proxy_seen_path(self) -> Path:
        """Where a server of an earlier version noted, in its own data directory, that requests
        arrived through a reverse proxy while no public origin was set: still read, though the
        note is now kept in the database (:data:`PROXY_NOTE`)."""
        return self.data_dir / PROXY_SEEN_FILE

    @property
    def plain_http_seen_path(self) -> Path:
        """Where a server of an earlier version noted, in its own data directory, the first
        request it answered that came over plain HTTP: still read (:meth:`transport_seen`),
        though the note is now kept in the database (:data:`PLAIN_HTTP_NOTE`)."""
        return self.data_dir / PLAIN_HTTP_SEEN_FILE

    @property
    def forwarded_https_seen_path(self) -> Path:
        """Where a server of an earlier version noted the first request a trusted proxy
        forwarded as https: still read, the note now being the database's
        (:data:`FORWARDED_HTTPS_NOTE`)."""
        return self.data_dir / FORWARDED_HTTPS_SEEN_FILE

    @property
    def serving_settings_path(self) -> Path:
        """Where a starting server notes the settings the compliance check reads
        (:func:`note_serving_settings`), for ``tandem compliance check`` to compare with its
        own (:func:`serving_differences`)."""
        return self.data_dir / SERVING_SETTINGS_FILE

    def checked_settings(self) -> dict[str, object]:
        """The settings ``tandem compliance check`` reads from its own environment (none
        secret): the server's may differ (:func:`serving_differences`). Every setting the
        check takes as what the server does (its purges' intervals, its sign-ins' timeouts,
        its default re-training interval) or as the deployment's own threshold is here; not
        the files the check reads itself (the advisory file, and the bounds of what it reads)
        nor where it runs (tests/test_config.py names each setting the check reads)."""
        return {
            "host": self.host,
            "tls": self.tls,
            "tls_key": str(self.tls_key) if self.tls_key else None,
            "trusted_proxies": list(self.trusted_proxies),
            "public_origins": list(self.public_origins),
            "console_origins": list(self.console_origins),
            "login_idle_seconds": self.login_idle_seconds,
            "login_ttl_seconds": self.login_ttl_seconds,
            "purge_interval_seconds": self.purge_interval_seconds,
            "recording_purge_seconds": self.recording_purge_seconds,
            "max_recording_overdue_seconds": self.max_recording_overdue_seconds,
            "anonymous_audit_retention_days": self.anonymous_audit_retention_days,
            "audit_anchor_max_age_days": self.audit_anchor_max_age_days,
            "audit_anchor_every": self.audit_anchor_every,
            "advisory_max_age_days": self.advisory_max_age_days,
            "training_interval_days": self.training_interval_days,
            "policy_file": str(self.policy_file) if self.policy_file else None,
            "policy_sha256": _file_digest(self.policy_file),
            "audit_key_file": str(self.audit_key_path),
            "postgresql": bool(self.database_url),
        }

    def transport_seen(
        self, plain_noted: str | None = None, https_noted: str | None = None
    ) -> tuple[str | None, bool]:
        """What the requests showed of the browsers' transport: the note of one that came over
        plain HTTP (or why the note cannot be read: a failed check rather than a passed one),
        and whether one came through a trusted proxy as https. ``plain_noted`` and
        ``https_noted`` are the database's notes (:data:`PLAIN_HTTP_NOTE`,
        :data:`FORWARDED_HTTPS_NOTE`: seen by any server on it); without them, an earlier
        version's notes in the data directory."""
        plain: str | None
        if plain_noted is not None:
            plain = (
                f"{plain_noted.strip()[:300] or 'a request'} (noted by a server on this database)"
            )
        else:
            try:
                plain = self.plain_http_seen_path.read_text(encoding="utf-8").strip()[:300]
                plain = f"{plain or 'a request'} (noted in {self.plain_http_seen_path})"
            except FileNotFoundError:
                plain = None
            except OSError as exc:
                plain = f"its note ({self.plain_http_seen_path}) is unreadable: {exc}"
        return plain, https_noted is not None or self.forwarded_https_seen_path.exists()

    def exposure(self, noted: str | None = None) -> str | None:
        """:attr:`unnamed_exposure`, or, with none, that requests came with a reverse proxy's
        headers (a proxy on the same machine, forwarding to loopback, passes on any ``Host``):
        ``noted``, the database's :data:`PROXY_NOTE` (seen by any server on it), or an earlier
        version's note in the data directory. None when public origins are set."""
        if self.unnamed_exposure is not None or self.public_origins:
            return self.unnamed_exposure
        if noted is not None:
            return (
                f"requests came through a reverse proxy ({noted[:40] or 'a proxy header'} seen "
                "by a server on this database), which forwards any Host"
            )
        try:
            header = self.proxy_seen_path.read_text(encoding="utf-8").strip()[:40]
        except FileNotFoundError:
            return None
        except OSError as exc:  # unreadable: say so, fail the check rather than pass it
            return f"its note of a reverse proxy ({self.proxy_seen_path}) is unreadable: {exc}"
        return (
            f"requests came through a reverse proxy ({header or 'a proxy header'} seen; "
            f"{self.proxy_seen_path}), which forwards any Host"
        )

    @property
    def database_path(self) -> Path:
        return self.data_dir / "tandem.sqlite3"

    @property
    def secrets_key_path(self) -> Path:
        """Key encrypting TOTP seeds at rest; kept beside the audit key."""
        return self.audit_key_path.with_name("secrets.key")

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit.key"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``) and explicit overrides.

        Overrides whose value is ``None`` are ignored, so CLI options can be passed through as-is.
        Raises :class:`ConfigError` naming the bad setting.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        # An empty variable is not given, as for every other one: an empty host would listen
        # on every interface, an empty data directory would be the current directory.
        if env.get("TANDEM_HOST", "").strip():
            values["host"] = env["TANDEM_HOST"].strip()
        if "TANDEM_PORT" in env:
            try:
                values["port"] = int(env["TANDEM_PORT"])
            except ValueError:
                raise ConfigError("TANDEM_PORT must be a whole number") from None
        if env.get("TANDEM_DATA_DIR", "").strip():
            values["data_dir"] = Path(env["TANDEM_DATA_DIR"])
        if env.get("TANDEM_ALLOW_ORIGINS", "").strip():
            values["allow_origins"] = tuple(
                o.strip() for o in env["TANDEM_ALLOW_ORIGINS"].split(",") if o.strip()
            )
        if env.get("TANDEM_CONSOLE_ORIGINS", "").strip():
            values["console_origins"] = tuple(
                o.strip() for o in env["TANDEM_CONSOLE_ORIGINS"].split(",") if o.strip()
            )
        if env.get("TANDEM_PUBLIC_ORIGINS", "").strip():
            values["public_origins"] = tuple(
                o.strip() for o in env["TANDEM_PUBLIC_ORIGINS"].split(",") if o.strip()
            )
        for key, variable in (("tls_cert", "TANDEM_TLS_CERT"), ("tls_key", "TANDEM_TLS_KEY")):
            if env.get(variable):
                values[key] = Path(env[variable])
        if env.get("TANDEM_DATABASE_URL", "").strip():
            values["database_url"] = env["TANDEM_DATABASE_URL"].strip()
        if env.get("TANDEM_REDIS_URL", "").strip():
            values["redis_url"] = env["TANDEM_REDIS_URL"].strip()
        if env.get("TANDEM_REDIS_PREFIX", "").strip():
            values["redis_prefix"] = env["TANDEM_REDIS_PREFIX"].strip()
        if env.get("TANDEM_METRICS_TOKEN", "").strip():
            values["metrics_token"] = env["TANDEM_METRICS_TOKEN"].strip()
        if env.get("TANDEM_METRICS_PORT", "").strip():
            try:
                values["metrics_port"] = int(env["TANDEM_METRICS_PORT"])
            except ValueError:
                raise ConfigError("TANDEM_METRICS_PORT must be a whole number") from None
        if env.get("TANDEM_METRICS_HOST", "").strip():
            values["metrics_host"] = env["TANDEM_METRICS_HOST"].strip()
        for key, variable in (
            ("heartbeat_seconds", "TANDEM_HEARTBEAT_SECONDS"),
            ("process_lost_seconds", "TANDEM_PROCESS_LOST_SECONDS"),
            ("resume_grace_seconds", "TANDEM_RESUME_GRACE_SECONDS"),
            ("agent_resume_seconds", "TANDEM_AGENT_RESUME_SECONDS"),
        ):
            if env.get(variable, "").strip():
                try:
                    values[key] = float(env[variable])
                except ValueError:
                    raise ConfigError(f"{variable} must be a number of seconds") from None
        if env.get("TANDEM_LOG_FORMAT", "").strip():
            values["log_format"] = env["TANDEM_LOG_FORMAT"].strip()
        if env.get("TANDEM_LOGIN_BIND_CLIENT", "").strip():
            values["login_bind_client"] = env["TANDEM_LOGIN_BIND_CLIENT"].strip()
        if env.get("TANDEM_SHUTDOWN_TIMEOUT", "").strip():
            try:
                values["shutdown_timeout_seconds"] = float(env["TANDEM_SHUTDOWN_TIMEOUT"])
            except ValueError:
                raise ConfigError("TANDEM_SHUTDOWN_TIMEOUT must be a number of seconds") from None
        if env.get("TANDEM_AUDIT_KEY"):
            values["audit_key_file"] = Path(env["TANDEM_AUDIT_KEY"])
        if env.get("TANDEM_POLICY"):
            values["policy_file"] = Path(env["TANDEM_POLICY"])
        if env.get("TANDEM_SITE_VERIFICATION_NAMESERVERS", "").strip():
            values["site_verification_nameservers"] = tuple(
                n.strip()
                for n in env["TANDEM_SITE_VERIFICATION_NAMESERVERS"].split(",")
                if n.strip()
            )
        if env.get("TANDEM_TRUSTED_PROXIES", "").strip():
            values["trusted_proxies"] = tuple(
                p.strip() for p in env["TANDEM_TRUSTED_PROXIES"].split(",") if p.strip()
            )
        if env.get("TANDEM_ADVISORY_FILE"):
            values["advisory_file"] = Path(env["TANDEM_ADVISORY_FILE"])
        for key, variable in NUMBER_SETTINGS.items():
            if env.get(variable, "").strip():
                try:
                    values[key] = float(env[variable])
                except ValueError:
                    raise ConfigError(f"{variable} must be a number") from None
        for field in dataclasses.fields(cls):
            variable = "TANDEM_" + field.name.upper()
            kind = NUMBER_KINDS.get(str(field.type))
            if kind is None or field.name in values or not env.get(variable, "").strip():
                continue
            try:
                values[field.name] = kind(env[variable])
            except ValueError:
                what = "a whole number" if kind is int else "a number"
                raise ConfigError(f"{variable} must be {what}") from None
        for key, value in overrides.items():
            if value is None or (key in LIST_SETTINGS and not value):
                continue
            if key in (
                "data_dir",
                "tls_cert",
                "tls_key",
                "policy_file",
                "audit_key_file",
                "advisory_file",
            ):
                if not str(value).strip():
                    raise ConfigError(f"{key.replace('_', ' ')} is empty: name a file or directory")
                value = Path(str(value))
            values[key] = value
        try:
            return cls(**values)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(str(exc)) from None


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names (its path, or a ``dbname``/``database`` parameter).
    ConfigError for a URL that names none (``postgresql://``, ``postgresql://db.example``):
    PostgreSQL would pick one after the operating system's user, so ``tandem db copy --to
    postgresql://`` filled whatever database that was."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(
            "the database URL is malformed (an unclosed [ around an IPv6 host?)"
        ) from None
    for host in parts.netloc.rpartition("@")[2].split(","):
        _, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
        if colon and port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"the database URL's port must be from 1 to 65535, not {port!r}")
    name = parts.path.lstrip("/")
    for key, _, value in (item.partition("=") for item in parts.query.split("&")):
        if key in ("dbname", "database") and value:
            name = value
    if not name:
        raise ConfigError(
            "the database URL names no database: postgresql://user@host:port/database"
        )
    return name


def trusted_proxy(text: str) -> str:
    """A trusted proxy as uvicorn matches it: ``*``, an IP address or a network (``10.0.0.0/8``).
    ConfigError for anything else: uvicorn would keep it as a literal no peer address ever
    equals (a host name, an empty string, ``10.0.0.1/8``), so the proxy's headers would be
    ignored without a word and every client counted as the proxy's one address."""
    if text == "*":
        return text
    try:
        if "/" in text:
            ipaddress.ip_network(text)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(
            f"trusted proxy {text!r} must be an IP address (10.0.0.5), a network (10.0.0.0/8, "
            "no host bits set) or *"
        ) from None
    return text


def nameserver_address(text: str) -> tuple[str, int]:
    """``(address, port)`` of a resolver written ``address``, ``address:port`` or
    ``[IPv6]:port`` (port 53 by default); ConfigError otherwise."""
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"nameserver {text!r} is not [address]:port")
            port = rest[1:]
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
        number = int(port)
    except ValueError:
        raise ConfigError(
            f"nameserver {text!r} must be an IP address, with a port or not"
        ) from None
    if not 0 < number < 65536:
        raise ConfigError(f"nameserver {text!r}: port must be between 1 and 65535")
    return address, number


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listening address, or ``localhost``) is this machine's loopback only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


PROXY_SEEN_FILE = "proxy-headers-seen"
"""In the data directory: the name of the reverse-proxy header a request came with while no
public origin was set, as earlier versions noted it (Settings.exposure still reads it; ``tandem
compliance forget-proxy`` removes it with the database's note)."""

PROXY_NOTE = "proxy_headers_seen"
"""The database's note (Storage.note_installation) of the reverse-proxy header a request came
with while no public origin was set, made by whichever server saw it: every server's compliance
check fails ``public_origin`` and every start warns (Settings.exposure) until a public origin is
set or the operator removes it (``tandem compliance forget-proxy``)."""

PLAIN_HTTP_SEEN_FILE = "plain-http-seen"
"""In the data directory: the first request (not a probe, not from this machine) the server
answered over plain HTTP, as earlier versions noted it (Settings.transport_seen still reads it;
``tandem compliance forget-plain-http`` removes it with the database's note)."""

FORWARDED_HTTPS_SEEN_FILE = "forwarded-https-seen"
"""In the data directory: a trusted proxy has forwarded a request as https, as earlier versions
noted it (still read)."""

PLAIN_HTTP_NOTE = "plain_http_seen"
"""The database's note (Storage.note_installation) of the first request (not a probe, not from
this machine) a server on it answered over plain HTTP, as the connection or a trusted proxy's
X-Forwarded-Proto said: every server's compliance check fails ``transport`` (Settings.
transport_seen) until the operator removes it (``tandem compliance forget-plain-http``) once the
proxy forwards only HTTPS. Removed while plain requests still come, it is made again."""

FORWARDED_HTTPS_NOTE = "forwarded_https_seen"
"""The database's note of the first request a trusted proxy forwarded to a server on it as
https (what shows that HTTPS ends at the proxy: Settings.transport_seen)."""

SERVING_SETTINGS_FILE = "serving-settings.json"
"""In the data directory: the settings the last server started on it runs with, as far as the
compliance check reads them (Settings.checked_settings)."""

PROXY_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
)
"""The headers a reverse proxy adds to what it forwards (nginx, HAProxy, Caddy, load balancers)."""


def public_origin_warning(exposure: str) -> str:
    """The start-up warning of a server browsers may reach by names it does not know
    (``exposure``: :meth:`Settings.exposure`)."""
    return (
        f"no public origin is set and {exposure}: requests naming a host name other than "
        "localhost or --host are refused (421), any address is answered, and a proxy that "
        "sends an address as the Host passes on whatever name the browser used (a name an "
        "attacker points at this server, DNS rebinding, is same-origin with it). Set "
        "--public-origin https://tandem.example.com (or TANDEM_PUBLIC_ORIGINS) to the origin "
        "browsers use (docs/deployment.md)"
    )


def _file_digest(path: Path | None) -> str | None:
    """The SHA-256 of a small file the server reads once at start (its policy): edited since,
    the running server still uses what it read then."""
    if path is None:
        return None
    import hashlib

    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def note_serving_settings(settings: Settings) -> None:
    """Note, as the server starts, the settings it runs with (Settings.checked_settings)."""
    text = json.dumps(settings.checked_settings(), sort_keys=True, indent=1)
    settings.serving_settings_path.write_text(text + "\n", encoding="utf-8")


def serving_differences(settings: Settings) -> list[str]:
    """How the settings of the server last started on ``settings.data_dir`` differ from
    ``settings`` (``name: here X, the server Y``), as far as the compliance check reads them;
    empty when no server noted them. A note that cannot be read is a difference too (the check
    would not know what the server runs with)."""
    path = settings.serving_settings_path
    try:
        served = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        return [f"the server's note of its settings ({path}) is unreadable: {exc}"]
    if not isinstance(served, dict):
        return [f"the server's note of its settings ({path}) is unreadable"]
    mine = json.loads(json.dumps(settings.checked_settings()))
    return [
        f"{name}: here {mine[name]!r}, the server {served[name]!r}"
        if name in served
        else f"{name}: here {mine[name]!r}, the server did not note it (started by an earlier "
        "version of Tandem: restart it to have it noted)"
        for name in sorted(mine)
        if served.get(name, _UNNOTED) != mine[name]
    ]


_UNNOTED = object()


def ascii_host(host: str, what: str) -> str:
    """A host name as browsers and resolvers write it: in ASCII (IDNA), lower case. Raises
    ConfigError for one no browser could reach (an empty or over-long label, a character IDNA
    refuses)."""
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ConfigError(f"not a valid host name in {what}: {host!r}") from None


def normalize_origin(origin: str) -> str:
    """Return ``scheme://host[:port]`` in lower case, default ports dropped.

    Raises :class:`ConfigError` for anything that is not a bare http(s) origin (also what the
    URL parser itself refuses, such as ``http://[``: an ``Origin`` header any client sends). A
    host name is written as browsers send it, in ASCII (IDNA): ``https://bücher.example`` is
    ``https://xn--bcher-kva.example``.
    """
    try:
        parts = urlsplit(origin.strip())
    except ValueError:  # an unclosed or bad IPv6 bracket
        raise ConfigError(f"not an http(s) origin: {origin!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) origin: {origin!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"an origin has no path, query or user part: {origin!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"bad port in origin: {origin!r}") from None
    if port == 0:  # no port a browser reaches (it was dropped as if the default)
        raise ConfigError(f"bad port in origin: {origin!r}")
    if _URL_STRIPPED.search(origin.strip()):  # the parser drops them: another host than typed
        raise ConfigError(f"not an http(s) origin (a tab or line break in it): {origin!r}")
    default = {"http": 80, "https": 443}[parts.scheme]
    host = _origin_host(parts.hostname, origin)
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


# What urlsplit silently removes from a URL (as the WHATWG parser does): `https://a\tb.example`
# would be read as `https://ab.example`, a site nobody typed.
_URL_STRIPPED = re.compile(r"[\t\r\n]")
# A host name's labels as a browser's Origin header carries them, in ASCII (IDNA) and lower case:
# letters, digits, `-` and `_`, with an optional dot at the end. Anything else (a space, `*`, `%`,
# `<`, `|`...) names no host a browser reaches, and no Origin header ever carries it: a site added
# as `https://*.example.com` (no wildcards: one site per origin) never matched a page.
_HOST_LABELS = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
# A host whose last label is a number is an IPv4 address to a browser (WHATWG URL), which writes
# it as four decimal numbers: `http://0x7f.1` is sent as `http://127.0.0.1`, and `1.2.3.4.5` is
# no address at all.
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")


def _origin_host(host: str, origin: str) -> str:
    """The host of an origin as browsers serialise it, or ConfigError for one they never send."""
    if ":" in host:  # an IPv6 address (urlsplit took the brackets off)
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"not a valid IPv6 address in origin {origin!r}") from None
        if address.scope_id is not None:
            raise ConfigError(f"an origin's IPv6 address has no zone (%...): {origin!r}")
        return f"[{address.compressed}]"
    host = ascii_host(host, f"origin {origin!r}")
    if not _HOST_LABELS.fullmatch(host):
        raise ConfigError(
            f"not a valid host name in origin {origin!r}: letters, digits, '-' and '_' only"
            + (" (no wildcards: add one site per origin)" if "*" in host else "")
        )
    if _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical = ""
        if canonical != host:
            raise ConfigError(
                f"an IPv4 address in an origin is four decimal numbers (as 127.0.0.1): {origin!r}"
            )
    return host
