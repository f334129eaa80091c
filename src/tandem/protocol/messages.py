"""Every control message on the wire (version 1). See docs/protocol.md.

Control messages are JSON text frames tagged by ``type`` and carrying ``v``. Payloads travel as
binary frames and are not modelled here: the server never parses them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

PROTOCOL_VERSION: Literal[1] = 1

CLOSE_REASON_TOO_MANY_PRACTICE = "too many practice sessions waiting for you"
"""How the close reason (with 4429) begins that refuses a practice session beyond
``max_waiting_practice_per_account``: the SDK tells it from the other 4429 refusals by it and
shows its own words for it (a trainee, not a customer: too many practice sessions open)."""

CLOSE_REASON_ROLE_CHANGED = "your role no longer allows this"
"""The close reason (with 4403) for a socket whose account lost the action it uses."""
CLOSE_REASON_TEAMS_CHANGED = "your teams no longer serve this site"
"""The close reason (with 4403) for a socket in a session whose site none of the account's teams
serves any more (the account's teams, or the site's, changed)."""
CLOSE_REASON_TOO_MANY_CODES = "too many wrong codes"
"""How the close reason (with 4429) begins for an agent's socket that tried too many wrong codes.

The console tells these reasons apart to choose which of its own sentences to show; it never
shows a relay's close reason itself (a lying relay can at most make one refusal read as another).
"""

SessionId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
CodeText = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
HandshakeData = Annotated[
    str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
]
"""A key-exchange message between the two browsers, base64url; opaque to the server."""
SessionState = Literal["waiting", "pending_consent", "sharing"]
EndReason = Literal[
    "declined",
    "stopped",
    "agent_left",
    "code_expired",
    "customer_lost",
    "agent_lost",
    "server_shutdown",
    "key_mismatch",
    "idle_timeout",
    "max_duration",
    "watch_ended",
]
"""Why a session ended; ``watch_ended`` only ever reaches a supervisor whose watch ended."""


class Inbound(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """A message a browser sends to the server; ``v`` is required."""

    v: Literal[1]


class Outbound(msgspec.Struct, tag_field="type", kw_only=True):
    """A message the server sends to a browser."""

    v: Literal[1] = PROTOCOL_VERSION


# Customer -> server


CustomerToken = Annotated[
    str,
    msgspec.Meta(
        min_length=5, max_length=2048, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$"
    ),
]
"""A JWT (compact form) signed by the site's backend for a signed-in customer."""

PracticeTicket = Annotated[
    str, msgspec.Meta(min_length=3, max_length=512, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
]
"""A practice ticket the server issued to an agent (tandem.training), opaque to browsers."""


class Create(Inbound, tag="create"):
    """Start a new session; the first message on a customer socket."""

    token: CustomerToken | None = None
    """The site's customer token (docs/administration.md); required where the site says so."""
    practice: PracticeTicket | None = None
    """Only on the server's own practice pages: the agent's practice ticket (docs/training.md).
    The session is then a practice session, joinable only by that agent."""


class Resume(Inbound, tag="resume"):
    """Re-attach a customer socket to its session after a page navigation."""

    session_id: SessionId
    resume_token: Token


class Consent(Inbound, tag="consent"):
    """The customer's answer to an agent's request to view the page."""

    granted: bool


class Stop(Inbound, tag="stop"):
    """The customer ends the session."""


class Handshake(Inbound, tag="handshake"):
    """A key-exchange message for the other browser (either direction). Relayed, never read."""

    data: HandshakeData


class Abort(Inbound, tag="abort"):
    """The key exchange failed (the code did not match): end the session and burn the code."""

    reason: Literal["key_mismatch"]


class WatchConsent(Inbound, tag="watch_consent"):
    """The customer's answer to a supervisor asking to watch too."""

    granted: bool


class WatchHandshake(Inbound, tag="watch_handshake"):
    """A key-exchange message between the customer and the watching supervisor. Relayed."""

    data: HandshakeData


class WatchAbort(Inbound, tag="watch_abort"):
    """The supervisor's key exchange failed: end the watch (the session goes on)."""


ReportedEvent = Literal[
    "control_granted",
    "control_refused",
    "control_revoked",
    "page_paused",
    "page_resumed",
    "controls_hidden",
    "controls_shown",
]


class Report(Inbound, tag="report"):
    """The customer's browser reports a decision for the audit trail: remote control granted,
    refused or revoked, sharing paused on a private page or resumed, sharing paused because the
    page kept Tandem's Stop sharing from the customer (covered it, hid it) or went on once the
    customer could see it again. Names only: the server
    cannot see inside the encrypted channel, and learns no page, URL or content from this."""

    event: ReportedEvent


class RecordConsent(Inbound, tag="record_consent"):
    """The customer's answer to the agent's request to record the session."""

    granted: bool


class RecordStop(Inbound, tag="record_stop"):
    """Stop recording (the customer, or the agent); the session goes on."""


CustomerMessage = (
    Create
    | Resume
    | Consent
    | Stop
    | Handshake
    | Abort
    | WatchConsent
    | WatchHandshake
    | WatchAbort
    | RecordConsent
    | RecordStop
    | Report
)


# Agent -> server


class Join(Inbound, tag="join"):
    """An agent joins the session named by a code the customer read out."""

    code: CodeText


class Leave(Inbound, tag="leave"):
    """The agent leaves; the session ends."""


class Watch(Inbound, tag="watch"):
    """A supervisor asks to watch a live session of its team (the customer is asked)."""

    session_id: SessionId


class Record(Inbound, tag="record"):
    """The agent asks to record the session (the customer is asked)."""


class Rejoin(Inbound, tag="rejoin"):
    """An agent whose console reloaded (or whose network dropped) takes its session up again,
    within ``resume_seconds`` of losing it, with the resume token its ``joined`` carried. Only
    the same sign-in may (issue 13, fault 6); the end-to-end keys stay in the console."""

    session_id: SessionId
    resume_token: Token


AgentMessage = Join | Watch | Leave | Handshake | Abort | Record | RecordStop | Rejoin


# Server -> customer


# Policies travel as JSON objects (the SDK validates them); ``Any``, not ``object``, so that msgspec
# can describe them in the JSON Schema the SDK's types are generated from.


class Created(Outbound, tag="created"):
    session_id: str
    code: str
    resume_token: str
    expires_in: int
    policy: dict[str, Any] | None = None
    """The organisation's masking policy, which the SDK merges into the site's."""
    resume_seconds: int = 0
    """How long the server keeps the session for a page that lost its socket: the SDK's
    reconnect attempts stop within it (0: not said; the SDK assumes 30)."""


class Resumed(Outbound, tag="resumed"):
    state: SessionState
    agent: str | None
    code: str | None
    policy: dict[str, Any] | None = None
    recording: bool = False
    """The session is being recorded (the customer consented earlier in this session)."""
    team_policies: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """The agent's teams' policies, in the same message so that the page knows them before it
    shares anything (a separate message could arrive after sharing began)."""
    resume_seconds: int = 0
    """As in ``created``."""


class TeamPolicy(Outbound, tag="team_policy"):
    """The policies of the joining agent's teams (for this site): the SDK applies each on top of
    the site's and the organisation's; they can only add restrictions. Sent before
    ``agent_joined``; after a resume they are part of ``resumed``. The SDK takes them only
    before the customer's Allow and keeps those for the session: one sent after it ends the
    session (a rule changed mid-session would tell, by pausing or not, whether the page's
    address matches it)."""

    policies: list[dict[str, Any]]


class AgentJoined(Outbound, tag="agent_joined"):
    agent: str


class WatchRequest(Outbound, tag="watch_request"):
    """A supervisor asks to watch; the customer allows or refuses."""

    watcher: str


class WatcherLeft(Outbound, tag="watcher_left"):
    """The supervisor stopped watching (left, lost, refused or its code did not match)."""


class WatchRelay(Outbound, tag="watch_handshake"):
    data: str


class RecordRequest(Outbound, tag="record_request"):
    """The agent asks to record; the customer allows or refuses. ``key`` is the organisation's
    recording public key, for which the customer's browser wraps each content key, if the site's
    own page pinned it and the agent confirmed inside the encrypted channel. ``recording_id``
    names the recording to be (its first frame binds it, with ``site``)."""

    agent: str
    key: str
    recording_id: str
    site: str


# Server -> agent


class Joined(Outbound, tag="joined"):
    session_id: str
    resume_token: str = ""
    """For ``rejoin`` after a console reload or a dropped network (this sign-in only)."""
    resume_seconds: int = 0
    """How long the session waits for a lost agent (0: it ends at once)."""
    resumed: bool = False
    """The answer to ``rejoin``: the same session, taken up again."""


class Watching(Outbound, tag="watching"):
    """The supervisor's request reached the customer, who is being asked."""

    session_id: str


class WatcherJoined(Outbound, tag="watcher_joined"):
    """Tells the agent that a supervisor now watches too."""

    watcher: str


class ConsentNotice(Outbound, tag="consent"):
    granted: bool


class PeerStatus(Outbound, tag="peer"):
    """The other side's socket went (it may come back within the resume window) or came back.
    To the agent about the customer; to the customer about the agent."""

    connected: bool


class ErrorNotice(Outbound, tag="error"):
    code: str
    message: str


# Server -> both


class HandshakeRelay(Outbound, tag="handshake"):
    data: str


class Ended(Outbound, tag="ended"):
    reason: EndReason


class Restarting(Outbound, tag="restarting"):
    """The server is stopping (SIGTERM: a restart or an upgrade), not failing: sent to every
    socket before it closes 1012. ``reconnect``: the session was handed over to the next
    process; resume it there (with the resume token, within the resume window).
    ``server_shutdown``: the session ends (``ended`` follows), or the socket is in none."""

    message: str
    """What to show the person, in plain words."""
    reason: Literal["server_shutdown", "reconnect"] = "server_shutdown"


class LinkStatus(Outbound, tag="link"):
    """Several processes (docs/scale-out.md): the link between the two sides' servers (Redis)
    is down and frames wait (``reconnecting``), or it is back and they flow again
    (``restored``). Nothing is lost meanwhile; past ``tunnel_outage_seconds`` the socket that
    crosses processes is closed 1013 instead. Clients may show it; older ones ignore it."""

    state: Literal["reconnecting", "restored"]


RecordingReason = Literal[
    "declined",
    "stopped_by_customer",
    "stopped_by_agent",
    "size_limit",
    "unavailable",
    "session_ending",
]
"""``stopped_by_agent``, ``size_limit`` and ``session_ending`` ask the customer's browser to end
the recording (its end marker goes first); the others say it has ended."""


class RecordingStatus(Outbound, tag="recording"):
    """Recording started (``on``) or stopped, and why; to the customer and the agent."""

    on: bool
    reason: RecordingReason | None = None


ServerMessage = (
    Created
    | Resumed
    | TeamPolicy
    | AgentJoined
    | Joined
    | ConsentNotice
    | PeerStatus
    | ErrorNotice
    | Ended
    | Restarting
    | LinkStatus
    | HandshakeRelay
    | WatchRequest
    | WatcherLeft
    | WatchRelay
    | Watching
    | WatcherJoined
    | RecordRequest
    | RecordingStatus
)
