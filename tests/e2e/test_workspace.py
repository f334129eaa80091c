"""The agent workspace (issue 15): the session header, the framed mirror, the pointer and drawing
tools that need no control, typing straight into the mirrored field, the wording of control, the
console's shortcuts and languages, and accessibility.

The customer's browser alone decides what of the agent's pointing is drawn
(sdk/src/share/annotations.ts): never over masked or no-control elements, never once the
customer turned it off, never from anything but the agent's encrypted commands, and never
recorded or mirrored."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import (
    AGENT_VIEWPORT,
    CUSTOMER_VIEWPORT,
    Joined,
    Party,
    agent_plaintext,
    allow,
    get_help,
    share,
    sign_in,
)
from tests.e2e.test_control import grant
from tests.e2e.test_recordings import key_pair, use_recording_key
from tests.e2e.test_supervisor import supervisor_console
from tests.malicious import MaliciousRelay

KIND_TO_CUSTOMER = b"\x03"
KIND_CONTENT = b"\x01"


def start(customer: Party, agent: Party, live: RunningServer, path: str = "/demo/") -> Any:
    customer.page.set_viewport_size(CUSTOMER_VIEWPORT)
    agent.page.set_viewport_size(AGENT_VIEWPORT)
    customer.page.goto(f"{live.base}{path}")
    view = share(customer, agent, live, get_help(customer))
    expect(view.locator("body")).to_be_attached()
    return view


def centre(agent: Party, view: Any, selector: str) -> tuple[float, float]:
    target = view.locator(selector).first
    expect(target).to_be_visible()
    box = target.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def in_mirror(customer: Party, agent: Party, view: Any, selector: str) -> tuple[float, float]:
    """The customer scrolls `selector` into view; its centre in the mirror once the mirror has
    followed the scroll all the way (the mirror lags: scrolls are sampled)."""
    customer.page.locator(selector).first.scroll_into_view_if_needed()
    frame = agent.page.locator("#mirror").bounding_box()
    assert frame is not None
    point: tuple[float, float] = (0, 0)
    mirror_scroll = "() => document.querySelector('#mirror iframe').contentWindow.scrollY"

    def shown() -> bool:
        nonlocal point
        if agent.page.evaluate(mirror_scroll) != customer.page.evaluate("() => scrollY"):
            return False
        point = centre(agent, view, selector)
        return frame["y"] < point[1] < frame["y"] + frame["height"]

    wait_until(agent.page, shown)
    return point


def laser_on(customer: Party) -> Any:
    # Playwright's CSS locators pierce open shadow roots: the layer is in the SDK's own tree.
    return customer.page.locator("[data-tandem-annotations] .laser:not(.faded)")


def point_at(agent: Party, view: Any, selector: str) -> None:
    x, y = centre(agent, view, selector)
    agent.page.mouse.move(x - 3, y - 3)
    agent.page.mouse.move(x, y, steps=4)


def laser_box(customer: Party, agent: Party, view: Any, selector: str) -> Any:
    """The laser's box on the customer's page while the agent points at ``selector``. The dot
    fades once the agent's mouse rests, which on a busy machine can come before it is measured:
    then the agent points again (each attempt still has to show the dot)."""
    for _ in range(5):
        point_at(agent, view, selector)
        expect(laser_on(customer)).to_have_count(1)
        try:
            box = laser_on(customer).bounding_box(timeout=1000)
        except PlaywrightTimeoutError:
            box = None
        if box is not None:
            return box
    raise AssertionError("the laser faded each time before it could be measured")


def pick(agent: Party, tool: str) -> None:
    button = agent.page.get_by_role("button", name=tool, exact=True)
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")


def test_the_pointer_shows_on_the_customers_page_without_control_and_is_announced(
    joined: Joined,
) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    expect(agent.page.get_by_role("button", name="Request control")).to_be_visible()
    pick(agent, "Pointer")
    # Where the agent points: the dot's centre on the button the agent pointed at.
    dot = laser_box(customer, agent, view, "button:has-text('Add to cart')")
    target = customer.page.locator("button:has-text('Add to cart')").first.bounding_box()
    assert dot is not None and target is not None
    cx, cy = dot["x"] + dot["width"] / 2, dot["y"] + dot["height"] / 2
    assert target["x"] <= cx <= target["x"] + target["width"], (dot, target)
    assert target["y"] <= cy <= target["y"] + target["height"], (dot, target)
    # Announced: visibly and to screen readers; no control was asked for.
    status = customer.page.locator("[data-tandem-annotations] [role=status]")
    expect(status).to_have_text("Alice is pointing at something on this page.")
    expect(customer.page.get_by_text("Alice can point and draw on this page.")).to_be_visible()
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    # It fades once the agent stops moving.
    expect(customer.page.locator("[data-tandem-annotations] .laser")).to_have_count(0, timeout=5000)
    # Never recorded: nothing of it reached the agent's browser, decrypted or mirrored.
    assert view.locator("[data-tandem-annotations], .laser").count() == 0
    plaintext = agent_plaintext(agent)
    for word in ("data-tandem-annotations", "tandem-fade", "is pointing at", "can point and draw"):
        assert word not in plaintext, word


def test_highlight_and_drawing_fade_and_need_no_control(joined: Joined) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    pick(agent, "Highlight")
    x, y = centre(agent, view, "button:has-text('Add to cart')")
    agent.page.mouse.click(x, y)
    mark = customer.page.locator("[data-tandem-annotations] .mark")
    expect(mark).to_have_count(1)
    expect(customer.page.locator("[data-tandem-annotations] [role=status]")).to_contain_text(
        "Alice highlighted “Add to cart”"
    )
    # Only pointing: the button was not pressed.
    expect(customer.page.locator("#cart-count")).to_have_text("0")
    pick(agent, "Draw")
    agent.page.mouse.move(x - 120, y - 60)
    agent.page.mouse.down()
    agent.page.mouse.move(x - 60, y - 40, steps=5)
    agent.page.mouse.move(x, y - 60, steps=5)
    agent.page.mouse.up()
    expect(customer.page.locator("[data-tandem-annotations] svg.stroke")).to_have_count(1)
    expect(customer.page.locator("[data-tandem-annotations] [role=status]")).to_have_text(
        "Alice drew on this page."
    )
    # Both fade and go by themselves.
    expect(mark).to_have_count(0, timeout=8000)
    expect(customer.page.locator("[data-tandem-annotations] svg.stroke")).to_have_count(
        0, timeout=8000
    )
    # Esc puts the tool down.
    agent.page.keyboard.press("Escape")
    expect(agent.page.get_by_role("button", name="Draw", exact=True)).to_have_attribute(
        "aria-pressed", "false"
    )


def test_nothing_is_drawn_over_masked_or_no_control_elements(joined_checkout: Joined) -> None:
    customer, agent = joined_checkout.customer, joined_checkout.agent
    view = joined_checkout.view
    expect(view.locator("#name")).to_be_attached()
    status = agent.page.locator("#status")
    pick(agent, "Pointer")
    point_at(agent, view, "#name")  # a masked field
    expect(status).to_contain_text("Not shown: that part of the page is hidden from you")
    assert laser_on(customer).count() == 0
    pick(agent, "Highlight")
    # Place order is marked data-tandem-no-control.
    x, y = in_mirror(customer, agent, view, "button:has-text('Place order')")
    agent.page.mouse.click(x, y)
    expect(status).to_contain_text("Not shown: that part of the page is hidden from you")
    pick(agent, "Draw")  # a stroke across the masked field is not drawn at all
    expect(status).to_contain_text("Draw on")
    nx, ny = in_mirror(customer, agent, view, "#name")
    agent.page.mouse.move(nx, ny - 70)
    agent.page.mouse.down()
    agent.page.mouse.move(nx, ny + 5, steps=8)
    agent.page.mouse.up()
    expect(status).to_contain_text("Not shown: that part of the page is hidden from you")
    assert customer.page.locator("[data-tandem-annotations] .mark, svg.stroke").count() == 0
    # Something the agent can see is still drawn.
    pick(agent, "Highlight")
    x, y = in_mirror(customer, agent, view, "label[for=notes]")
    agent.page.mouse.click(x, y)
    expect(customer.page.locator("[data-tandem-annotations] .mark")).to_have_count(1)
    # Nor over an embedded document the agent never sees into (a payment provider's card form).
    customer.page.evaluate(
        """() => {
            const frame = document.createElement('iframe');
            frame.id = 'card-frame';
            frame.title = 'Card details';
            frame.style.cssText = 'display:block;width:400px;height:160px';
            document.querySelector('label[for=notes]').before(frame);
        }"""
    )
    pick(agent, "Pointer")
    expect(status).to_contain_text("Pointer on")
    x, y = in_mirror(customer, agent, view, "#card-frame")
    agent.page.mouse.move(x - 5, y - 5)
    agent.page.mouse.move(x, y, steps=4)
    expect(status).to_contain_text("Not shown: that part of the page is hidden from you")
    assert laser_on(customer).count() == 0


def test_the_customer_turns_pointing_off_and_the_agent_is_told(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious(server_factory)
    view = start(customer, agent, server)
    pick(agent, "Pointer")
    point_at(agent, view, "button:has-text('Add to cart')")
    expect(laser_on(customer)).to_have_count(1)
    customer.page.get_by_role("button", name="Turn off pointer").click()
    expect(customer.page.locator("[data-tandem-annotations] .laser")).to_have_count(0)
    expect(agent.page.locator("#status")).to_contain_text("The customer turned your pointer off.")
    pointer = agent.page.get_by_role("button", name="Pointer", exact=True)
    expect(pointer).to_be_disabled()
    expect(pointer).to_have_attribute("aria-pressed", "false")
    # The customer's switch is kept by the customer's browser: a console that never hears of it
    # (its notices dropped on the way) and keeps pointing draws nothing.
    customer.page.get_by_role("button", name="Allow pointer").click()
    expect(pointer).to_be_enabled()
    pick(agent, "Pointer")
    relay.binary_to_agent = lambda frame: None
    customer.page.get_by_role("button", name="Turn off pointer").click()
    sent_before = len([f for f in customer.frames.sent if f[:1] == KIND_CONTENT])
    received_before = len([f for f in customer.frames.received if f[:1] == KIND_TO_CUSTOMER])
    for dx in range(0, 60, 6):
        x, y = centre(agent, view, "button:has-text('Add to cart')")
        agent.page.mouse.move(x + dx, y)
    # The commands arrived and the customer's browser answered them (its refusal, encrypted).
    wait_until(
        customer.page,
        lambda: (
            len([f for f in customer.frames.received if f[:1] == KIND_TO_CUSTOMER])
            > received_before + 3
            and len([f for f in customer.frames.sent if f[:1] == KIND_CONTENT]) > sent_before
        ),
    )
    assert customer.page.locator("[data-tandem-annotations] .laser").count() == 0


def test_a_malicious_server_cannot_make_the_customers_page_draw(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious(server_factory)
    view = start(customer, agent, server)
    pick(agent, "Pointer")
    point_at(agent, view, "button:has-text('Add to cart')")
    expect(laser_on(customer)).to_have_count(1)
    agent.page.keyboard.press("Escape")  # the agent puts the pointer down: laser_off
    expect(customer.page.locator("[data-tandem-annotations] .laser")).to_have_count(0)
    genuine = [f for f in agent.frames.sent if f[:1] == KIND_TO_CUSTOMER]
    assert len(genuine) >= 2
    received_before = len([f for f in customer.frames.received if f[:1] == KIND_TO_CUSTOMER])
    # Replays of the agent's own encrypted commands, forged frames and plaintext commands.
    forged = [
        *genuine,
        KIND_TO_CUSTOMER + (10**6).to_bytes(8, "big") + bytes(40),
        KIND_TO_CUSTOMER + b'{"k":"laser","x":300,"y":300}',
        b'{"k":"laser","x":300,"y":300}',
        KIND_TO_CUSTOMER + (10**6).to_bytes(8, "big") + b'{"k":"draw","points":[[0,0],[500,500]]}',
    ]
    for frame in forged:
        relay.inject_customer_bytes(frame)
    wait_until(
        customer.page,
        lambda: (
            len([f for f in customer.frames.received if f[:1] == KIND_TO_CUSTOMER])
            >= received_before + len(forged) - 1
        ),
    )
    # A genuine command after them is drawn: the page processed what came before it.
    pick(agent, "Highlight")
    x, y = centre(agent, view, "button:has-text('Add to cart')")
    agent.page.mouse.click(x, y)
    expect(customer.page.locator("[data-tandem-annotations] .mark")).to_have_count(1)
    assert customer.page.locator("[data-tandem-annotations] .laser").count() == 0
    assert customer.page.locator("[data-tandem-annotations] svg.stroke").count() == 0
    # The session goes on: forged frames are ignored, not fatal.
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_be_visible()


def test_the_header_says_site_page_device_time_state_and_session(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    start(customer, agent, live)
    page = agent.page
    expect(page.locator("#site-heading")).to_have_text(re.compile(r"^127\.0\.0\.1:\d+$"))
    expect(page.locator("#fact-site")).to_have_text(re.compile(r"^http://127\.0\.0\.1:\d+$"))
    expect(page.locator("#fact-page")).to_have_text("Shop · Northwind Outfitters")
    expect(page.locator("#fact-device")).to_have_text("Desktop, 1000 \u00d7 760")
    expect(page.locator("#fact-recording")).to_have_text("Off")
    expect(page.locator("#fact-control")).to_have_text("The customer")
    expect(page.locator("#fact-session")).to_have_text(re.compile(r"^[\w-]{8,}$"))
    expect(page.locator("#fact-duration")).to_have_text(re.compile(r"^0:0[2-9]$"), timeout=12000)
    # The page title follows the customer's navigation; the device its window.
    customer.page.set_viewport_size({"width": 390, "height": 700})
    expect(page.locator("#fact-device")).to_have_text("Phone, 390 \u00d7 700")  # by its width
    customer.page.goto(customer.page.url.replace("/demo/", "/demo/cart.html"))
    expect(page.locator("#fact-page")).to_have_text("Cart · Northwind Outfitters")
    # The mirror is framed and scaled to fit: never wider than the room, centred.
    device = page.locator("#device")
    expect(device).to_have_class(re.compile(r"\bdesktop\b|\bphone\b"))
    stage = page.locator("#stage").bounding_box()
    box = device.bounding_box()
    assert stage is not None and box is not None
    assert box["x"] >= stage["x"] - 1 and box["x"] + box["width"] <= stage["x"] + stage["width"] + 1


def test_a_title_the_sites_policy_masks_is_not_shown(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    customer.page.evaluate(
        """() => document.getElementById('tandem-policy').textContent =
            JSON.stringify({version: 1, mask: ['title']})"""
    )
    share(customer, agent, live, get_help(customer))
    expect(agent.page.locator("#fact-page")).to_have_text("Hidden by the site's policy")
    assert "Northwind Outfitters" not in agent_plaintext(agent).split('"k":"context"')[-1][:300]


def test_a_phone_is_framed_as_a_phone_and_fits_the_window(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.set_viewport_size({"width": 390, "height": 844})
    agent.page.set_viewport_size({"width": 1280, "height": 720})
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    device = agent.page.locator("#device")
    expect(device).to_have_class(re.compile(r"\bphone\b"))
    expect(agent.page.locator("#fact-device")).to_contain_text("390 \u00d7 844")
    box = agent.page.locator("#mirror").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 720, box  # scaled to fit the height, not cut off
    assert abs(box["width"] / box["height"] - 390 / 844) < 0.02, box
    assert_accessible(agent.page)


def test_typing_goes_straight_into_the_mirrored_field_and_closes_on_navigation(
    joined: Joined,
) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    grant(customer, agent)
    mirror_box = agent.page.locator("#mirror").bounding_box()
    x, y = centre(agent, view, "input[type=search]")
    agent.page.mouse.click(x, y)
    box = agent.page.get_by_label("Type into the customer's field")
    expect(box).to_be_focused()
    # Over the mirrored field itself; the mirror did not move.
    field = view.locator("input[type=search]").bounding_box()
    typing = box.bounding_box()
    assert field is not None and typing is not None
    assert abs(typing["x"] - field["x"]) < 4 and abs(typing["y"] - field["y"]) < 4, (typing, field)
    assert agent.page.locator("#mirror").bounding_box() == mirror_box
    agent.page.keyboard.type("tent")
    expect(customer.page.get_by_label("Search products")).to_have_value("tent")
    # The customer navigates: the box closes and keeps no stale text.
    customer.page.goto(customer.page.url.replace("/demo/", "/demo/cart.html"))
    expect(box).to_be_hidden()
    expect(agent.page.locator("#fact-page")).to_have_text("Cart · Northwind Outfitters")


def test_release_control_is_worded_as_the_agents_own(joined: Joined) -> None:
    customer, agent = joined.customer, joined.agent
    grant(customer, agent)
    expect(agent.page.locator("#fact-control")).to_have_text("You have control")
    agent.page.get_by_role("button", name="Release control").click()
    expect(agent.page.locator("#status")).to_have_text(
        "You released control. The customer is in control again."
    )
    expect(agent.page.locator("#fact-control")).to_have_text("The customer")
    grant(customer, agent)
    customer.page.keyboard.press("Escape")
    expect(agent.page.locator("#status")).to_have_text("The customer took back control.")


def test_recording_state_survives_a_navigation(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    _, public, _ = key_pair()
    use_recording_key(live, public)
    start(customer, agent, live)
    agent.page.get_by_role("button", name="Ask to record").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow recording").click()
    expect(agent.page.locator("#status")).to_contain_text("Recording, with the customer's")
    expect(agent.page.locator("#fact-recording")).to_have_text("On")
    customer.page.goto(customer.page.url.replace("/demo/", "/demo/cart.html"))
    expect(agent.page.locator("#fact-page")).to_have_text("Cart \u00b7 Northwind Outfitters")
    expect(agent.page.locator("#status")).to_contain_text(re.compile("Recording"))
    expect(agent.page.locator("#fact-recording")).to_have_text("On")


def test_keyboard_only_walkthrough_of_the_workspace(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    page = agent.page
    page.goto(f"{live.base}/console/")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type(AGENT_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Session code")).to_be_focused()
    assert_accessible(page)
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    allow(customer)
    expect(page.locator("#status")).to_contain_text("You are seeing the customer's page live")
    # Tab reaches every control of the workspace in order.
    reached: list[str] = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement?.id || 'other'"))
    for expected in ("tool-laser", "tool-highlight", "tool-draw", "request-control", "leave"):
        assert expected in reached, reached
    assert reached.index("tool-laser") < reached.index("request-control") < reached.index("leave")
    # Shortcuts: listed, and they work.
    page.locator("#shortcuts summary").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#shortcuts")).to_contain_text("Alt+Shift+P")
    page.keyboard.press("Alt+Shift+KeyP")
    expect(page.locator("#tool-laser")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Escape")
    expect(page.locator("#tool-laser")).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("Alt+Shift+KeyC")
    expect(customer.page.get_by_role("dialog")).to_contain_text("Alice asks to control this page")
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow control").click()
    expect(page.locator("#fact-control")).to_have_text("You have control")
    assert_accessible(page)
    page.keyboard.press("Alt+Shift+KeyC")
    expect(page.locator("#status")).to_contain_text("You released control")
    page.locator("#leave").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Session ended")
    expect(page.get_by_label("Session code")).to_be_visible()


def test_the_workspace_and_the_pointer_notice_pass_axe(joined: Joined) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    assert_accessible(agent.page)
    pick(agent, "Pointer")
    point_at(agent, view, "button:has-text('Add to cart')")
    expect(laser_on(customer)).to_have_count(1)
    assert_accessible(customer.page)
    customer.page.get_by_role("button", name="Turn off pointer").click()
    expect(agent.page.locator("#status")).to_contain_text("turned your pointer off")
    assert_accessible(agent.page)
    assert_accessible(customer.page)


def test_workspace_screenshots(joined: Joined, tmp_path: Path) -> None:
    """The agent workspace beside a desktop and a phone customer, with the customer's view of the
    pointer. Written to $TANDEM_SCREENSHOTS when set (docs/screenshots/README.md), else a
    temporary directory."""
    out = Path(os.environ.get("TANDEM_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    customer, agent, view = joined.customer, joined.agent, joined.view
    pick(agent, "Highlight")
    x, y = centre(agent, view, "button:has-text('Add to cart')")
    agent.page.mouse.click(x, y)
    expect(customer.page.locator("[data-tandem-annotations] .mark")).to_have_count(1)
    pick(agent, "Pointer")
    point_at(agent, view, "input[type=search]")
    expect(laser_on(customer)).to_have_count(1)
    agent.page.screenshot(path=str(out / "agent-workspace-desktop.png"))
    # caret="initial": hiding the caret injects a style the page's CSP reports
    customer.page.screenshot(path=str(out / "customer-pointer.png"), caret="initial")
    agent.page.keyboard.press("Escape")
    customer.page.set_viewport_size({"width": 390, "height": 844})
    expect(agent.page.locator("#device")).to_have_class(re.compile(r"\bphone\b"))
    agent.page.locator("#shortcuts summary").click()
    agent.page.mouse.move(0, 0)
    agent.page.screenshot(path=str(out / "agent-workspace-phone.png"))
    for name in ("agent-workspace-desktop", "customer-pointer", "agent-workspace-phone"):
        assert (out / f"{name}.png").stat().st_size > 10_000, name


def test_the_console_speaks_the_agents_language(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in(agent, live)
    agent.page.goto(f"{live.base}/console/?lang=de")
    expect(agent.page.get_by_label("Sitzungscode")).to_be_visible()
    agent.page.get_by_label("Sitzungscode").fill(code)
    agent.page.get_by_role("button", name="Beitreten").click()
    allow(customer)
    expect(agent.page.locator("#status")).to_have_text(
        "Verbunden. Sie sehen die Seite des Kunden live."
    )
    expect(agent.page.get_by_role("button", name="Zeiger", exact=True)).to_be_visible()
    assert_accessible(agent.page)
    # Left first: a console reloaded mid-session takes its session up again (test_reconnect.py),
    # which hid the join screen checked here whenever it came back before the check did.
    agent.page.get_by_role("button", name="Verlassen").click()
    expect(agent.page.get_by_role("button", name="Verlassen")).to_have_count(0)
    agent.page.goto(f"{live.base}/console/?lang=ar")
    expect(agent.page.locator("html")).to_have_attribute("dir", "rtl")
    expect(agent.page.get_by_label("رمز الجلسة")).to_be_visible()
    assert_accessible(agent.page)


def test_supervisors_list_shows_site_agent_duration_and_state(
    joined: Joined, supervisor: Party
) -> None:
    live = joined.live
    supervisor_console(supervisor, live)
    sam = supervisor.page
    row = sam.locator("#session-list li", has_text="Demo shop")
    expect(row.locator(".agent")).to_have_text(re.compile("alice", re.I))
    expect(row.locator(".state")).to_have_text("Sharing")
    expect(row.locator(".duration")).to_have_text(re.compile(r"^\d+:\d\d$"))
    watch = row.get_by_role("button", name=re.compile("^Watch the session on Demo shop"))
    expect(watch).to_be_visible()
    assert_accessible(sam)


# Helpers


def malicious(server_factory: ServerFactory) -> tuple[RunningServer, MaliciousRelay]:
    relays: list[MaliciousRelay] = []

    def wrap(app: Any) -> MaliciousRelay:
        relays.append(MaliciousRelay(app))
        return relays[-1]

    server = server_factory(wrap=wrap)
    return server, relays[0]


def wait_until(page: Page, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition on the test's side (the frame logs), letting the page run meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        page.wait_for_timeout(50)  # yields to Playwright's event loop so frames are logged
