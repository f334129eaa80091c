"""Revoked sign-ins end live agent sockets, in every process (issue 14).

A socket is authorised when it opens, and again on every ``join``, ``watch`` and ``record`` and
every ``agent_reauth_seconds`` (:meth:`tandem.hub.SessionHub.reauthorize`); a socket in a session
is also checked against the session's site (its teams must still serve it). When a sign-in ends
or an account changes (sign-out, "sign out everywhere", second factor reset, account removed,
role or teams changed), a site's teams change or the site goes, or a team is removed, the change
is announced on the fan-out's :data:`TOPIC`, which reaches every server process (in-process or
Redis); each hub then re-checks the matching sockets at once.

An announcement only names what to re-check, never what to conclude: storage decides. A forged or
lost announcement therefore changes nothing but timing (the periodic check still runs).

A download under way (a recording's file, a subject's export) asks storage before each of its
chunks, and at once when an announcement names its sign-in, account or organisation
(:class:`tandem.hub.DownloadGuard`); it is cut when its sign-in no longer allows it.
"""

from __future__ import annotations

import msgspec

from tandem.fanout.base import Fanout, Frame
from tandem.protocol.messages import CLOSE_REASON_ROLE_CHANGED, CLOSE_REASON_TEAMS_CHANGED

TOPIC = "revocations"
"""The fan-out topic every hub subscribes to."""

SIGNED_OUT = "signed out: sign in again"
"""The close reason (with 4401) for a socket whose sign-in ended or whose account went."""
ROLE_CHANGED = CLOSE_REASON_ROLE_CHANGED
"""The close reason (with 4403) for a socket whose account lost the action it uses."""
TEAMS_CHANGED = CLOSE_REASON_TEAMS_CHANGED
"""The close reason (with 4403) for a socket in a session whose site none of the account's teams
serves any more (the account's teams, or the site's, changed)."""
NOT_CHECKED = "your sign-in could not be checked: try again"
"""Why a download was cut when storage did not answer its check (Hub.download_guard): nobody
could tell whether the sign-in still held, so nothing more was sent."""


class Revocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Re-check the sockets of one sign-in (``login``: its token digest), one account
    (``user``), the sessions of one site (``site``) or everyone of one organisation (``org``).
    Fields left empty are not sent, so an announcement of a sign-in or an account reads the
    same to a process of the previous version during a rolling upgrade (one naming a site or an
    organisation it ignores: its periodic check still runs)."""

    login: str = ""
    user: str = ""
    site: str = ""
    org: str = ""
    everyone: bool = False
    """Re-check every socket: sent by a process whose link to the shared fan-out (Redis) was
    lost, once it is back, since what it announced meanwhile was dropped, not queued."""


def announce(
    fanout: Fanout,
    *,
    login: str = "",
    user: str = "",
    site: str = "",
    org: str = "",
    everyone: bool = False,
) -> None:
    """Tell every process to re-check the sockets of ``login`` (a sign-in's token digest), of
    ``user`` (every sign-in of the account), those in a session of ``site`` (its teams changed
    or it went), those of organisation ``org`` (one of its teams went) or, with ``everyone``,
    all of them."""
    if login or user or site or org or everyone:
        heard = Revocation(login=login, user=user, site=site, org=org, everyone=everyone)
        fanout.publish(TOPIC, Frame(msgspec.json.encode(heard).decode()))


def concerns(heard: Revocation, *, login: str, user: str, org: str, site: str | None) -> bool:
    """Whether ``heard`` names a socket of sign-in ``login`` by ``user`` of ``org``, in a
    session of ``site`` (None: in no session)."""
    return bool(
        heard.everyone
        or (heard.login and heard.login == login)
        or (heard.user and heard.user == user)
        or (heard.org and heard.org == org)
        or (heard.site and heard.site == site)
    )


def decode(data: str | bytes) -> Revocation | None:
    """The announcement in a frame, or None for anything else (ignored, never fatal)."""
    try:
        return msgspec.json.decode(data, type=Revocation)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
