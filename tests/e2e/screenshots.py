"""Screenshot comparisons for the browser tests (issue 15): Playwright for Python has no
`toHaveScreenshot`, so this is its equivalent.

`assert_screenshot(page, name)` takes a screenshot (animations off, caret hidden, the parts that
change from run to run masked) and compares it with the baseline
`tests/e2e/screenshots/<name>.png`, pixel by pixel, in the browser (it decodes both PNGs from
blobs, untouched by the page's CSP, and draws them on an OffscreenCanvas, which changes nothing
in the page: no imaging library is needed. Not in a second page: a page that is not in front is
captured at the window's size rather than its viewport). A pixel differs when any channel differs
by more than CHANNEL_THRESHOLD; the test fails when more than TOLERANCE of the pixels differ, or the
sizes differ, and writes `<name>.actual.png` and `<name>.diff.png` (differing pixels in red) next
to the baseline for a look.

Deterministic by construction: the tests fix the clock (`page.clock.set_fixed_time`), emulate
reduced motion (the widget has no animations), paint random codes grey, and the baselines were made
with Debian's chromium and its DejaVu fonts; its headless shell, which the tests run, draws the same
(`make chromium` installs all three).

Updating baselines, after a change to the look that is meant:

    TANDEM_UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest -m e2e tests/e2e/test_customer_widget.py

writes every baseline the run takes (and passes); review the images and commit them. A missing
baseline fails the test with that instruction (a comparison is never skipped).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page

HERE = Path(__file__).resolve().parent
BASELINES = HERE / "screenshots"
UPDATE = os.environ.get("TANDEM_UPDATE_SCREENSHOTS") == "1"
#: Share of pixels that may differ (anti-aliasing and font hinting across machines).
TOLERANCE = 0.005
#: A pixel differs when a channel (0-255) differs by more than this.
CHANNEL_THRESHOLD = 48


def _script(name: str) -> str:
    """A function in a .js file beside this one, without its comment lines (Playwright calls a
    string that starts as a function)."""
    lines = (HERE / name).read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("//")).strip()


_COMPARE = _script("screenshots_compare.js")


def compare_png(page: Page, expected: bytes, actual: bytes) -> dict[str, Any]:
    """Compare two PNGs inside `page` (nothing is added to its document)."""
    result: dict[str, Any] = page.evaluate(
        _COMPARE,
        [base64.b64encode(expected).decode(), base64.b64encode(actual).decode(), CHANNEL_THRESHOLD],
    )
    return result


_NORMALISE = _script("screenshots_normalise.js")


def capture(page: Page, mask: Sequence[Locator] = ()) -> bytes:
    """The viewport as PNG, `mask`ed parts painted grey.

    Through the DevTools protocol rather than `page.screenshot`: Playwright's screenshot injects
    inline styles (to stop animations, to draw masks), which a page's strict CSP reports as
    violations, and the browser tests fail on any CSP violation. The widget has no animations, and
    the tests emulate reduced motion.
    """
    cdp = page.context.new_cdp_session(page)
    try:
        shot = cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
    finally:
        cdp.detach()
    boxes = []
    for locator in mask:
        for i in range(locator.count()):
            found = locator.nth(i).bounding_box()
            if found:
                boxes.append([found["x"], found["y"], found["width"], found["height"]])
    data: str = page.evaluate(_NORMALISE, [shot["data"], boxes])
    return base64.b64decode(data)


def assert_screenshot(page: Page, name: str, mask: Sequence[Locator] = ()) -> None:
    """Compare a screenshot of `page`'s viewport with the baseline `name` (see the module doc)."""
    actual = capture(page, mask)
    baseline = BASELINES / f"{name}.png"
    if UPDATE:
        BASELINES.mkdir(parents=True, exist_ok=True)
        baseline.write_bytes(actual)
        return
    if not baseline.exists():
        (BASELINES / f"{name}.actual.png").write_bytes(actual)
        raise AssertionError(
            f"no baseline {baseline}: run with TANDEM_UPDATE_SCREENSHOTS=1, review and commit it"
        )
    result = compare_png(page, baseline.read_bytes(), actual)
    if not result["sameSize"]:
        (BASELINES / f"{name}.actual.png").write_bytes(actual)
        raise AssertionError(f"{name}: size changed {result['size']}")
    share = result["differing"] / result["total"]
    if share > TOLERANCE:
        (BASELINES / f"{name}.actual.png").write_bytes(actual)
        (BASELINES / f"{name}.diff.png").write_bytes(base64.b64decode(result["diff"]))
        raise AssertionError(
            f"{name}: {share:.2%} of the pixels differ (at most {TOLERANCE:.2%}); "
            f"see {name}.actual.png and {name}.diff.png in {BASELINES}"
        )
