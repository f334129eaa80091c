"""What sdk/rrweb-patches.mjs's fixes to rrweb's bundle leave in the built files (the build itself
fails when rrweb's bundle no longer has what they fix: a new rrweb version)."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "src" / "tandem" / "server" / "static"
SDK = STATIC / "sdk" / "tandem.js"
CONSOLE = STATIC / "console" / "console.js"


def test_the_customer_sdk_carries_no_postcss_and_the_console_keeps_the_replayers() -> None:
    # The recorder never rewrites CSS: rrweb's two inlined PostCSS copies are dropped from the
    # SDK (parsed and run on every customer's page load otherwise). The console's replayer
    # rewrites `:hover` rules and media queries with its one copy.
    assert "postcss" not in SDK.read_text().lower()
    assert "postcssPlugin" in CONSOLE.read_text()


def test_rrweb_checks_elements_query_methods_as_methods_not_accessors() -> None:
    # rrweb's untainted-prototype check: with querySelector(All) listed as accessors it always
    # failed, and every recorded page added and removed a hidden iframe twice.
    # Each copy of rrweb's helpers in the bundle has one list of each.
    lists = re.findall(r"Element:\[[^\]]*\]", SDK.read_text())
    accessors = lists.count('Element:["shadowRoot"]')
    assert accessors >= 1 and len(lists) == 2 * accessors, lists
    assert lists.count('Element:["querySelector","querySelectorAll"]') == accessors, lists
