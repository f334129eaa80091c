"""Revoked sign-ins end live agent sockets, in every process (issue 14).

A socket is authorised when it opens, and again on every ``join``, ``watch`` and ``record`` and
every ``agent_reauth_seconds`` (:meth:`tandem.hub.SessionHub.reauthorize`); a socket in a session
is also checked against the session's site (its teams must still serve it). When a sign-in ends
or an account changes (sign-out, "sign out everywhere", second factor reset, account removed,
role or teams changed) the change is announced on the fan-out's :data:`TOPIC`, which reaches
every server process (in-process or Redis); each hub then re-checks the matching sockets at once.

An announcement only names what to re-check, never what to conclude: storage decides. A forged or
lost announcement therefore changes nothing but timing (the periodic check still runs).
"""

from __future__ import annotations

import msgspec

from tandem.fanout.base import Fanout, Frame

TOPIC = "revocations"
"""The fan-out topic every hub subscribes to."""

SIGNED_OUT = "signed out: sign in again"
"""The close reason (with 4401) for a socket whose sign-in ended or whose account went."""
ROLE_CHANGED = "your role no longer allows this"
"""The close reason (with 4403) for a socket whose account lost the action it uses."""
TEAMS_CHANGED = "your teams no longer serve this site"
"""The close reason (with 4403) for a socket in a session whose site none of the account's teams
serves any more (the account's teams, or the site's, changed)."""


class Revocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Re-check the sockets of one sign-in (``login``: its token digest) or one account."""

    login: str = ""
    user: str = ""


def announce(fanout: Fanout, *, login: str = "", user: str = "") -> None:
    """Tell every process to re-check the sockets of ``login`` (a sign-in's token digest) or of
    ``user`` (every sign-in of the account)."""
    if login or user:
        fanout.publish(TOPIC, Frame(msgspec.json.encode(Revocation(login, user)).decode()))


def decode(data: str | bytes) -> Revocation | None:
    """The announcement in a frame, or None for anything else (ignored, never fatal)."""
    try:
        return msgspec.json.decode(data, type=Revocation)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
