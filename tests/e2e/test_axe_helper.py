"""The accessibility check must find a planted violation, or a clean result means nothing."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.e2e.axe import assert_accessible, axe_violations

pytestmark = pytest.mark.e2e

BAD = """<!doctype html><html lang="en"><head><title>t</title></head><body><main>
<p style="color:#aaa;background:#fff">low contrast</p><input id="nameless"><img src="data:,">
</main></body></html>"""
GOOD = """<!doctype html><html lang="en"><head><title>t</title></head><body><main><h1>Fine</h1>
<label for="n">Name</label><input id="n"></main></body></html>"""


def test_axe_finds_planted_violations_and_passes_a_clean_page(browser: Browser) -> None:
    page = browser.new_page()
    try:
        page.set_content(BAD)
        found = {violation["id"] for violation in axe_violations(page)}
        assert {"color-contrast", "label", "image-alt"} <= found
        with pytest.raises(AssertionError, match="color-contrast"):
            assert_accessible(page)
        page.set_content(GOOD)
        assert_accessible(page)
    finally:
        page.close()
