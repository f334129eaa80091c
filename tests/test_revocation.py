"""Revocation announcements (tandem.revocation): what each names, and how it reads on the wire."""

from __future__ import annotations

import msgspec

from tandem import revocation
from tandem.fanout.memory import MemoryFanout


class PreviousRevocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The announcement as the previous version decodes it (a rolling upgrade runs both)."""

    login: str = ""
    user: str = ""


async def heard(**names: str) -> revocation.Revocation:
    fanout = MemoryFanout()
    subscription = fanout.subscribe(revocation.TOPIC, 1 << 16)
    revocation.announce(fanout, **names)
    announced = revocation.decode((await subscription.get()).data)
    assert announced is not None
    return announced


async def test_a_site_announcement_concerns_only_sockets_in_that_sites_sessions() -> None:
    demo = await heard(site="demo")
    socket = {"login": "digest", "user": "alice", "org": "default"}
    assert revocation.concerns(demo, **socket, site="demo")
    assert not revocation.concerns(demo, **socket, site="shop")
    assert not revocation.concerns(demo, **socket, site=None)  # in no session
    # Empty names match nothing: a socket without a sign-in digest is not everyone's.
    assert not revocation.concerns(demo, login="", user="alice", org="default", site=None)


async def test_an_organisation_announcement_concerns_its_sockets_only() -> None:
    default = await heard(org="default")
    assert revocation.concerns(default, login="d", user="alice", org="default", site=None)
    assert not revocation.concerns(default, login="d", user="mallory", org="acme", site="shop")


async def test_an_account_announcement_reads_the_same_to_the_previous_version() -> None:
    fanout = MemoryFanout()
    subscription = fanout.subscribe(revocation.TOPIC, 1 << 16)
    revocation.announce(fanout, user="alice")
    data = (await subscription.get()).data
    assert msgspec.json.decode(data, type=PreviousRevocation) == PreviousRevocation(user="alice")
