"""The SDK build publishes each bundle's Subresource Integrity hash, and ships no source maps
beside the bundles: what is pinned is exactly what is served."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx

from tandem.server.app import SDK_FILE
from tests.conftest import ServerFactory


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_the_build_records_both_bundles_and_ships_no_source_maps(
    server_factory: ServerFactory,
) -> None:
    manifest = json.loads(SDK_FILE.with_name("integrity.json").read_text())
    console = SDK_FILE.parent.parent / "console" / "console.js"
    assert manifest == {
        "sdk/tandem.js": sri(SDK_FILE.read_bytes()),
        "console/console.js": sri(console.read_bytes()),
    }
    server = server_factory()
    for bundle in ("/sdk/tandem.js", "/console/console.js"):
        body = httpx.get(server.base + bundle).content
        # (rrweb's bundled worker names its own map, which is not shipped either.)
        assert f"sourceMappingURL={bundle.rsplit('/', 1)[1]}.map".encode() not in body, bundle
        assert httpx.get(f"{server.base}{bundle}.map").status_code == 404
