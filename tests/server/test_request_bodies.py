"""A signed-in request's JSON body is bounded by ``max_request_body_bytes``, not the 4 KiB of a
sign-in's: a site's masking policy of a few dozen selectors (valid by its own bounds: 200
selectors of up to 500 characters a list) was refused 413 "At most 4096 bytes"."""

from __future__ import annotations

import json
from collections.abc import Iterator

from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.test_organisations import api

SELECTORS = [f"#checkout form.payment-{n} input[name='card-number-{n:04}']" for n in range(150)]
POLICY = {"version": 1, "mask": SELECTORS}
SITE = {"site_id": "claims", "origin": "https://claims.example", "teams": ["support"]}


def test_a_site_with_a_policy_larger_than_4_kib_is_taken(orgs_server: RunningServer) -> None:
    body = {**SITE, "policy": POLICY}
    assert len(json.dumps(body)) > 8192
    with api(orgs_server, "ada") as ada:
        added = ada.post("/api/sites", json=body)
        assert added.status_code == 201, added.text
        assert added.json()["policy"]["mask"] == SELECTORS
        changed = ada.patch("/api/sites/claims", json={"policy": {"version": 1, "hide": SELECTORS}})
        assert changed.status_code == 200, changed.text


def test_a_body_over_the_setting_is_refused_413_naming_it(server_factory: ServerFactory) -> None:
    server = server_factory(seed=two_organisations, max_request_body_bytes=8192)
    with api(server, "ada") as ada:
        refused = ada.post("/api/sites", json={**SITE, "policy": POLICY})
        assert refused.status_code == 413 and "8192 bytes" in refused.json()["detail"]
        taken = ada.post("/api/sites", json={**SITE, "policy": {"version": 1, "mask": ["#pan"]}})
        assert taken.status_code == 201, taken.text


def test_a_body_sent_in_many_small_pieces_is_read_whole_up_to_the_setting(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations, max_request_body_bytes=64 * 1024)
    body = json.dumps({**SITE, "policy": POLICY}).encode()
    padded = body[:-1] + b" " * (64 * 1024 - len(body)) + b"}"
    assert len(padded) == 64 * 1024

    def pieces(data: bytes) -> Iterator[bytes]:
        yield from (data[i : i + 97] for i in range(0, len(data), 97))

    headers = {"content-type": "application/json"}
    with api(server, "ada") as ada:
        taken = ada.post("/api/sites", content=pieces(padded), headers=headers)
        assert taken.status_code == 201, taken.text
        assert taken.json()["policy"]["mask"] == SELECTORS
        over = padded[:-1] + b" }"
        refused = ada.post("/api/sites", content=pieces(over), headers=headers)
        assert refused.status_code == 413 and f"{64 * 1024} bytes" in refused.json()["detail"]
