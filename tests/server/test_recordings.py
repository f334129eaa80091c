"""Recordings at the server: asked by the agent, allowed by the customer, stopped by either;
only frames sent while allowed are kept, exactly as relayed; auditors play and export (audited),
admins erase (audited), nobody of another organisation sees one; retention and size limits.

The frames here are opaque test bytes: the server never looks inside them. That they are
ciphertext only the organisation's key file opens is tests/e2e/test_recordings.py."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import sqlite3
import threading
import time
import zipfile
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tandem import crypto, subjects
from tandem.directory import Directory, operator
from tandem.recordings import read_container
from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.helpers import (
    ANSWER_SECONDS,
    closed_with,
    login_cookie,
    recv_json,
    resume_on,
    send,
    sharing_session,
)
from tests.server.test_admin_api import audit_actions
from tests.server.test_organisations import api


def new_public_key() -> str:
    raw = X25519PrivateKey.generate().public_key().public_bytes_raw()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


KEY = new_public_key()


async def with_recording_key(directory: Directory) -> None:
    await two_organisations(directory)
    await directory.set_recording_key(operator("default"), KEY)


@pytest.fixture
def rec_server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(seed=with_recording_key)


async def recording(server: RunningServer) -> tuple[Any, Any, dict[str, Any]]:
    """A shared session whose customer allowed recording."""
    customer, alice, created = await sharing_session(server)
    await send(alice, type="record")
    request = await recv_json(customer)
    assert request == {
        "v": 1,
        "type": "record_request",
        "agent": "Alice",
        "key": KEY,
        "recording_id": request["recording_id"],
        "site": "demo",
    }
    assert len(request["recording_id"]) >= 16
    await send(customer, type="record_consent", granted=True)
    on = {"v": 1, "type": "recording", "on": True, "reason": None}
    assert await recv_json(alice) == on
    assert await recv_json(customer) == on
    return customer, alice, created


def recordings_of(server: RunningServer, username: str = "aud") -> list[dict[str, Any]]:
    with api(server, username) as client:
        response = client.get("/api/recordings")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found


async def wait_for(condition: Any, timeout: float = ANSWER_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_without_a_recording_key_the_agent_is_told_and_the_customer_not_asked(
    orgs_server: RunningServer,
) -> None:
    customer, alice, _ = await sharing_session(orgs_server)
    await send(alice, type="record")
    notice = await recv_json(alice)
    assert notice["type"] == "error" and notice["code"] == "no_recording_key"
    await customer.send(b"\x01still-sharing")
    assert await alice.recv() == b"\x01still-sharing"  # nothing else reached either side
    assert recordings_of(orgs_server) == []


async def test_a_recording_keeps_exactly_the_frames_sent_while_the_customer_allowed_it(
    rec_server: RunningServer,
) -> None:
    customer, alice, created = await sharing_session(rec_server)
    await customer.send(b"\x01before-asking")
    assert await alice.recv() == b"\x01before-asking"
    await send(alice, type="record")
    request = await recv_json(customer)
    assert request["type"] == "record_request"
    await customer.send(b"\x01while-asked")  # not yet allowed: not kept
    assert await alice.recv() == b"\x01while-asked"
    await send(customer, type="record_consent", granted=True)
    assert (await recv_json(alice))["on"] is True
    assert (await recv_json(customer))["on"] is True
    kept = [b"\x05wrapped-key", b"\x01" + bytes(range(256)) * 40, b"\x01\x00\xff"]
    for frame in kept:
        await customer.send(frame)
        assert await alice.recv() == frame  # relayed as before
    await send(customer, type="record_stop")
    off = {"v": 1, "type": "recording", "on": False, "reason": "stopped_by_customer"}
    assert await recv_json(alice) == off
    assert await recv_json(customer) == off
    await customer.send(b"\x01after-stop")
    assert await alice.recv() == b"\x01after-stop"

    [listed] = recordings_of(rec_server)
    assert listed["recording_id"] == request["recording_id"]  # the customer knew it beforehand
    assert listed["session_id"] == created["session_id"]
    assert listed["agent"] == "alice" and listed["site_id"] == "demo"
    assert listed["key_id"] == crypto.recording_key_id(KEY)
    assert listed["frames"] == len(kept) and listed["size"] == sum(map(len, kept))
    assert listed["end_reason"] == "stopped_by_customer" and listed["ended_at"] is not None
    with api(rec_server, "aud") as aud:
        played = aud.get(f"/api/recordings/{listed['recording_id']}/content")
        assert played.status_code == 200
        assert played.headers["content-type"] == "application/octet-stream"
        assert played.headers["cache-control"] == "no-store"
        header, frames = read_container(played.content)
        exported = aud.get(f"/api/recordings/{listed['recording_id']}/export")
        assert exported.status_code == 200
        assert "attachment" in exported.headers["content-disposition"]
        assert read_container(exported.content)[1] == kept
    assert frames == kept
    assert header["session_id"] == created["session_id"]
    assert header["key_id"] == listed["key_id"] and header["org_id"] == "default"
    actions = audit_actions(rec_server)
    for action in (
        "recording_requested",
        "recording_started",
        "recording_stopped",
        "recording_played",
        "recording_exported",
    ):
        assert action in actions, action


async def test_the_customer_may_refuse_and_nothing_is_kept(rec_server: RunningServer) -> None:
    customer, alice, _ = await sharing_session(rec_server)
    await send(alice, type="record")
    assert (await recv_json(customer))["type"] == "record_request"
    await send(customer, type="record_consent", granted=False)
    assert await recv_json(alice) == {
        "v": 1,
        "type": "recording",
        "on": False,
        "reason": "declined",
    }
    await customer.send(b"\x01not-kept")
    assert await alice.recv() == b"\x01not-kept"
    assert recordings_of(rec_server) == []
    assert "recording_declined" in audit_actions(rec_server)
    await send(alice, type="record")  # may ask again later
    assert (await recv_json(customer))["type"] == "record_request"


async def test_the_agent_stops_and_the_session_end_closes_a_recording(
    rec_server: RunningServer,
) -> None:
    customer, alice, _ = await recording(rec_server)
    await customer.send(b"\x01one")
    await alice.recv()
    await send(alice, type="record_stop")
    off = {"v": 1, "type": "recording", "on": False, "reason": "stopped_by_agent"}
    assert await recv_json(alice) == off
    assert await recv_json(customer) == off
    await customer.send(b"\x01end-marker")  # still kept: the customer's browser ends it
    await alice.recv()
    await send(customer, type="record_stop")
    await wait_for(lambda: recordings_of(rec_server)[0]["ended_at"] is not None)
    await send(alice, type="record")
    assert (await recv_json(customer))["type"] == "record_request"
    await send(customer, type="record_consent", granted=True)
    await recv_json(alice)
    await recv_json(customer)
    await customer.send(b"\x01two")
    await alice.recv()
    await send(customer, type="stop")
    await closed_with(customer)
    await wait_for(lambda: all(r["ended_at"] for r in recordings_of(rec_server)))
    second, first = recordings_of(rec_server)  # newest first
    assert (first["end_reason"], first["frames"]) == ("stopped_by_agent", 2)
    assert (second["end_reason"], second["frames"]) == ("session_ended", 1)


async def test_recording_follows_the_customer_to_the_next_page(rec_server: RunningServer) -> None:
    customer, alice, created = await recording(rec_server)
    await customer.send(b"\x01page-one")
    await alice.recv()
    await customer.close()  # navigation
    assert await recv_json(alice) == {"v": 1, "type": "peer", "connected": False}
    customer, resumed = await resume_on(rec_server, created)
    assert resumed["recording"] is True
    await recv_json(alice)  # peer connected
    await customer.send(b"\x01page-two")
    assert await alice.recv() == b"\x01page-two"
    await send(customer, type="record_stop")
    await recv_json(alice)
    [listed] = recordings_of(rec_server)
    assert listed["frames"] == 2


async def test_at_its_size_limit_a_recording_is_ended_by_the_customer_and_sharing_goes_on(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=with_recording_key, max_recording_bytes=100)
    customer, alice, _ = await recording(server)
    await customer.send(b"\x01" * 60)
    await alice.recv()
    await customer.send(b"\x01" * 60)  # reaches 100 bytes: kept, and the customer is asked
    assert await alice.recv() == b"\x01" * 60
    off = {"v": 1, "type": "recording", "on": False, "reason": "size_limit"}
    assert await recv_json(alice) == off
    assert await recv_json(customer) == off
    await customer.send(b"\x01end-marker")
    await alice.recv()
    await send(customer, type="record_stop")
    await wait_for(lambda: recordings_of(server)[0]["ended_at"] is not None)
    [listed] = recordings_of(server)
    assert (listed["frames"], listed["size"], listed["end_reason"]) == (3, 131, "size_limit")
    await customer.send(b"\x01sharing-goes-on")
    assert await alice.recv() == b"\x01sharing-goes-on"


async def test_past_the_allowance_for_its_end_a_recording_is_cut(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        seed=with_recording_key, max_recording_bytes=100, recording_end_bytes=10
    )
    customer, alice, _ = await recording(server)
    await customer.send(b"\x01" * 60)
    await alice.recv()
    await customer.send(b"\x01" * 60)  # past 110 bytes: not kept, cut at once
    assert await alice.recv() == b"\x01" * 60
    off = {"v": 1, "type": "recording", "on": False, "reason": "size_limit"}
    assert await recv_json(alice) == off
    assert await recv_json(customer) == off
    await wait_for(lambda: recordings_of(server)[0]["ended_at"] is not None)
    [listed] = recordings_of(server)
    assert (listed["frames"], listed["size"], listed["end_reason"]) == (1, 60, "size_limit")


async def test_when_the_agent_leaves_the_customers_end_marker_is_kept_before_the_session_ends(
    rec_server: RunningServer,
) -> None:
    customer, alice, _ = await recording(rec_server)
    await customer.send(b"\x01page")
    await alice.recv()
    await send(alice, type="leave")
    ending = {"v": 1, "type": "recording", "on": False, "reason": "session_ending"}
    assert await recv_json(customer) == ending
    await customer.send(b"\x01end-marker")  # the session still relays and records it
    await send(customer, type="record_stop")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}
    await closed_with(customer)
    await wait_for(lambda: recordings_of(rec_server)[0]["ended_at"] is not None)
    [listed] = recordings_of(rec_server)
    assert (listed["frames"], listed["end_reason"]) == (2, "session_ended")
    with api(rec_server, "aud") as aud:
        played = aud.get(f"/api/recordings/{listed['recording_id']}/content")
    assert read_container(played.content)[1] == [b"\x01page", b"\x01end-marker"]


async def test_a_session_ending_does_not_wait_long_for_a_customer_who_does_not_end_it(
    rec_server: RunningServer,
) -> None:
    customer, alice, _ = await recording(rec_server)
    await send(alice, type="leave")
    assert (await recv_json(customer))["reason"] == "session_ending"
    rec_server.clock.advance(rec_server.settings.recording_end_seconds)
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}
    await wait_for(lambda: recordings_of(rec_server)[0]["ended_at"] is not None)


async def test_who_may_list_play_export_and_erase(rec_server: RunningServer) -> None:
    customer, alice, _ = await recording(rec_server)
    await customer.send(b"\x01frame")
    await alice.recv()
    [running] = recordings_of(rec_server)
    path = f"/api/recordings/{running['recording_id']}"
    with api(rec_server, "ada") as ada:
        assert ada.delete(path).status_code == 409  # still recording
        assert ada.get("/api/recordings").status_code == 200  # admins see the list
        assert ada.get(f"{path}/content").status_code == 403  # never the content
        assert ada.get(f"{path}/export").status_code == 403
    for username in ("alice", "sam", "bob"):  # live roles: nothing of recordings
        with api(rec_server, username) as client:
            assert client.get("/api/recordings").status_code == 403
            assert client.get(f"{path}/content").status_code == 403
    await send(customer, type="record_stop")
    await recv_json(alice)
    with api(rec_server, "aud") as aud:
        assert aud.delete(path).status_code == 403  # auditors do not erase
    with api(rec_server, "ada") as ada:
        assert ada.delete(path).status_code == 204
        assert ada.delete(path).status_code == 404
        assert ada.get(path).status_code == 404
    assert recordings_of(rec_server) == []
    assert "recording_erased" in audit_actions(rec_server)


async def test_refused_attempts_to_play_export_or_erase_a_recording_are_audited(
    rec_server: RunningServer,
) -> None:
    # A 403 on a recording's content was answered and forgotten: an admin trying to play or
    # export one, an agent fetching one, an auditor erasing one left no trace in the trail.
    customer, alice, _ = await recording(rec_server)
    await customer.send(b"\x01frame")
    await alice.recv()
    await send(customer, type="record_stop")
    await recv_json(alice)
    [listed] = recordings_of(rec_server)
    recording_id = listed["recording_id"]
    path = f"/api/recordings/{recording_id}"
    with api(rec_server, "ada") as ada:
        assert ada.get(f"{path}/content").status_code == 403
        assert ada.get(f"{path}/export").status_code == 403
    with api(rec_server, "alice") as agent:
        assert agent.get(f"{path}/content").status_code == 403
    with api(rec_server, "aud") as aud:
        assert aud.delete(path).status_code == 403
        trail = aud.get("/api/audit").json()
    refused = [
        (r["actor"], r["subject"], r["details"]["needs"])
        for r in trail
        if r["action"] == "recording_refused"
    ]
    assert refused == [
        ("ada", recording_id, "recording.play"),
        ("ada", recording_id, "recording.export"),
        ("alice", recording_id, "recording.play"),
        ("aud", recording_id, "recording.erase"),
    ]
    assert "recording_played" not in [r["action"] for r in trail]
    assert len(recordings_of(rec_server)) == 1


async def test_another_organisation_cannot_see_a_recording(rec_server: RunningServer) -> None:
    customer, alice, _ = await recording(rec_server)
    await customer.send(b"\x01secret-frame")
    await alice.recv()
    await send(customer, type="record_stop")
    await recv_json(alice)
    [listed] = recordings_of(rec_server)
    path = f"/api/recordings/{listed['recording_id']}"
    for username in ("mo", "max"):  # Acme's auditor and admin
        with api(rec_server, username) as client:
            assert client.get("/api/recordings").json() == []
            for suffix in ("", "/content", "/export"):
                response = client.get(path + suffix)
                # the auditor is refused as not found, the admin by its role (403), never 200
                assert response.status_code in (403, 404), (username, suffix)
                assert b"secret-frame" not in response.content
            assert client.delete(path).status_code in (403, 404)
    with api(rec_server, "mo") as mo:
        for suffix in ("", "/content", "/export"):
            assert mo.get(path + suffix).status_code == 404
    with api(rec_server, "max") as max_:
        assert max_.get(path).status_code == 404
        assert max_.delete(path).status_code == 404
    assert len(recordings_of(rec_server)) == 1  # still there for its own organisation


async def test_recordings_expire_with_their_organisations_retention(
    rec_server: RunningServer,
) -> None:
    with api(rec_server, "ada") as ada:
        assert ada.patch("/api/org", json={"retention_days": 1}).status_code == 200
    customer, alice, _ = await recording(rec_server)
    await customer.send(b"\x01frame")
    await alice.recv()
    await send(customer, type="record_stop")
    await recv_json(alice)
    assert len(recordings_of(rec_server)) == 1
    rec_server.clock.advance(2 * 86400)
    assert recordings_of(rec_server) == []  # past its retention: left out at once
    await wait_for(lambda: "recording_expired" in audit_actions(rec_server))  # then purged


async def test_recording_messages_out_of_turn_are_refused(rec_server: RunningServer) -> None:
    customer, alice, _ = await sharing_session(rec_server)
    await send(customer, type="record_consent", granted=True)  # nobody asked
    assert (await closed_with(customer))[0] == 4400
    customer, alice, _ = await recording(rec_server)
    await send(alice, type="record")  # already recording
    assert (await closed_with(alice))[0] == 4400


def test_the_recording_key_is_validated_and_its_changes_audited(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "ada") as ada:
        assert ada.get("/api/org").json()["recording_key"] is None
        for bad in ("short", "A" * 43 + "=", "A" * 43, "!" * 43, "A" * 44):
            response = ada.put("/api/org/recording-key", json={"public_key": bad})
            assert response.status_code == 400, bad
        assert ada.get("/api/org").json()["recording_key"] is None
        done = ada.put("/api/org/recording-key", json={"public_key": KEY})
        assert done.status_code == 200
        assert done.json()["recording_key"] == {
            "public_key": KEY,
            "key_id": crypto.recording_key_id(KEY),
        }
        assert ada.delete("/api/org/recording-key").status_code == 204
        assert ada.get("/api/org").json()["recording_key"] is None
    with api(orgs_server, "max") as max_:  # Acme's admin: its own organisation only
        assert max_.get("/api/org").json()["recording_key"] is None
    with api(orgs_server, "aud") as aud:
        assert aud.put("/api/org/recording-key", json={"public_key": KEY}).status_code == 403
    actions = audit_actions(orgs_server)
    assert "recording_key_set" in actions and "recording_key_removed" in actions


async def test_a_recording_that_cannot_be_stored_stops_and_is_closed(
    rec_server: RunningServer,
) -> None:
    customer, alice, _ = await recording(rec_server)
    [running] = recordings_of(rec_server)
    with sqlite3.connect(rec_server.settings.database_path) as db:  # storage refuses frame 0
        db.execute(
            "INSERT INTO recording_frames (recording_id, seq, data) VALUES (?, 0, x'00')",
            (running["recording_id"],),
        )
    await customer.send(b"\x01frame")
    await alice.recv()
    off = {"v": 1, "type": "recording", "on": False, "reason": "unavailable"}
    assert await recv_json(alice, timeout=10) == off  # flushed within a tick
    assert await recv_json(customer) == off
    [failed] = recordings_of(rec_server)
    assert failed["end_reason"] == "unavailable" and failed["ended_at"] is not None
    assert "recording_failed" in audit_actions(rec_server)
    await customer.send(b"\x01sharing-goes-on")
    assert await alice.recv() == b"\x01sharing-goes-on"


def test_demo_pages_pin_the_default_organisations_recording_key(
    rec_server: RunningServer, orgs_server: RunningServer
) -> None:
    """Demo only (tandem/server/demo.py): the relay is the site there."""
    tag = '<script type="application/json" id="tandem-policy">'
    for path in ("/demo/", "/demo/checkout.html"):
        page = httpx.get(f"{rec_server.base}{path}")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        pinned = page.text.split(tag, 1)[1].split("</script>", 1)[0]
        key_id = crypto.recording_key_id(KEY)
        assert json.loads(pinned) == {"version": 1, "recording_keys": [key_id]}
        assert page.text.index(tag) < page.text.index('src="/sdk/tandem.js"')  # read as it loads
    unpinned = httpx.get(f"{orgs_server.base}/demo/").text.split(tag, 1)[1].split("</script>")[0]
    assert json.loads(unpinned) == {"version": 1, "recording_keys": []}
    assert httpx.get(f"{rec_server.base}/demo/nothing.html").status_code == 404
    assert httpx.get(f"{rec_server.base}/demo/shop.css").status_code == 200


async def large_recording(server: RunningServer, megabytes: int) -> str:
    """A finished recording of ``megabytes`` frames of a million bytes each; its id."""
    customer, alice, _ = await recording(server)
    frame = b"\x01" + bytes(999_999)
    for _ in range(megabytes):
        await customer.send(frame)
        assert len(await asyncio.wait_for(alice.recv(), 30)) == len(frame)
    await send(customer, type="record_stop")
    assert (await recv_json(alice))["on"] is False

    def ended() -> bool:
        [listed] = recordings_of(server)
        return listed["ended_at"] is not None and listed["size"] == megabytes * len(frame)

    await wait_for(ended, 30)
    recording_id: str = recordings_of(server)[0]["recording_id"]
    return recording_id


async def test_recording_downloads_at_once_are_bounded_and_one_not_read_is_dropped(
    server_factory: ServerFactory,
) -> None:
    """Each download held the recording twice in memory (its frames, then its file) and the
    transport kept the file until the client took it: an auditor asking for a large recording
    many times at once, reading none of it, held it that many times, for as long as it liked.
    Downloads under way are bounded (503 beyond), and an answer the client stops taking for
    socket_send_timeout_seconds has its connection dropped, which frees its place."""
    server = server_factory(
        seed=with_recording_key, max_recording_downloads=1, socket_send_timeout_seconds=1.0
    )
    recording_id = await large_recording(server, 16)
    path = f"/api/recordings/{recording_id}/export"
    cookie = login_cookie(server, "aud")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # takes a little, then no more
    stalled.connect(("127.0.0.1", server.settings.port))
    stalled.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: tandem_agent={cookie}\r\n\r\n".encode()
    )
    stalled.settimeout(30)
    assert stalled.recv(12) == b"HTTP/1.1 200"  # the file is on its way, and then not read
    with api(server, "aud") as aud:
        busy = aud.get(path)
        assert busy.status_code == 503, busy.status_code
        assert busy.json()["title"] == "Busy" and int(busy.headers["retry-after"]) >= 1

        def served() -> bool:
            answer = aud.get(path)
            assert answer.status_code in (200, 503), answer.text
            return answer.status_code == 200 and len(read_container(answer.content)[1]) == 16

        await wait_for(served, 30)  # the stalled download was dropped: its place is free
    stalled.settimeout(5)
    with pytest.raises(OSError):  # its connection was dropped before the file was whole
        while stalled.recv(1 << 20):
            pass
        raise ConnectionResetError("closed")  # an orderly close is a drop too
    stalled.close()


async def test_a_subject_export_is_built_off_the_event_loop(
    rec_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subject's export deflates its recordings into a zip (ciphertext: megabytes that do not
    compress), which ran on the event loop and held every live session's frames meanwhile (the
    whole deflate: seconds for 24 MB). Where it is built is checked, not how long a frame
    took: a busy machine's timings prove nothing either way."""
    customer, alice, created = await recording(rec_server)
    frame = b"\x01" + os.urandom(999_999)
    megabytes = 4
    for _ in range(megabytes):
        await customer.send(frame)
        assert len(await asyncio.wait_for(alice.recv(), 30)) == len(frame)
    await send(customer, type="record_stop")
    assert (await recv_json(alice))["on"] is False
    await wait_for(lambda: recordings_of(rec_server)[0]["ended_at"] is not None, 30)
    built_in: list[threading.Thread] = []
    build = subjects._archive

    def watched(*args: Any) -> bytes:
        built_in.append(threading.current_thread())
        return build(*args)

    monkeypatch.setattr(subjects, "_archive", watched)

    def export() -> httpx.Response:
        with api(rec_server, "ada") as ada:
            return ada.post("/api/subjects/export", json={"subject": created["session_id"]})

    exported = await asyncio.to_thread(export)
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        [name] = [n for n in archive.namelist() if n.startswith("recordings/")]
        assert len(read_container(archive.read(name))[1]) == megabytes
    assert len(built_in) == 1
    assert built_in[0] is not rec_server.thread  # not the server's event loop
    await customer.send(b"\x01still live")
    assert await asyncio.wait_for(alice.recv(), 30) == b"\x01still live"
