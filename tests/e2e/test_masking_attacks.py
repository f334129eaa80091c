"""Attacks on masking at the source (docs/security.md, "Attacks tried"), each performed on a real
page in Chromium. What the agent's console decrypted (the customer's content stream, which is
also what a recording holds: the recording key only wraps that stream's content keys,
docs/recordings.md) and the agent's mirror are searched for what must not arrive: a hidden value,
its length, which hidden box was chosen."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share

PLACEHOLDER = "\u2022" * 8


def _events(agent: Party) -> list[dict[str, Any]]:
    """Every recorded event the agent's console decrypted, in order."""
    events: list[dict[str, Any]] = []
    for line in agent_plaintext(agent).split("\n"):
        if line.startswith('{"k":"events"'):
            events.extend(json.loads(line)["events"])
    return events


def _recorded_ids(events: list[dict[str, Any]]) -> dict[str, int]:
    """The page's element ids (their `id` attribute) by rrweb's id, and `<id>.text` for each
    element's first text node, from the snapshots and added nodes."""
    ids: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        element_id = (node.get("attributes") or {}).get("id")
        children = node.get("childNodes") or []
        if element_id:
            ids[element_id] = node["id"]
            texts = [child["id"] for child in children if child.get("type") == 3]
            if texts:
                ids[f"{element_id}.text"] = texts[0]
        for child in children:
            walk(child)

    for event in events:
        if event["type"] == 2:
            walk(event["data"]["node"])
        elif event["type"] == 3 and event["data"]["source"] == 0:
            for add in event["data"].get("adds", []):
                walk(add["node"])
    return ids


def _incremental(events: list[dict[str, Any]], source: int) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == 3 and e["data"]["source"] == source]


# An SVG image as a `data:` address, percent-encoded, that draws a card number.
CARD_ART = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E%3Ctext y='15'%3E"
    "Card%204111%201111%201111%201111%3C%2Ftext%3E%3C%2Fsvg%3E"
)

TYPING = """
<meta http-equiv="refresh" content="3600; url=reset?token=REFRESH-TOKEN-5521">
<meta name="csrf-token" content="CSRF-TOKEN-5522">
<form>
<label for="pw">Password</label><input id="pw" type="password" style="width:40px">
<textarea id="story" style="height:30px"></textarea>
<fieldset><legend>Plan</legend>
  <input type="radio" name="plan" id="basic" value="basic"><label for="basic">Basic</label>
  <input type="radio" name="plan" id="gold" value="gold"><label for="gold">Gold</label>
  <input type="radio" name="plan" id="trial" value="trial"><label for="trial">Trial</label>
</fieldset>
<input type="checkbox" id="smoker"><label for="smoker">Smoker</label>
<div id="note" contenteditable="true" style="height:2em;overflow:auto">Dear</div>
</form>
<img id="card-art" alt="" width="200" height="20" src="CARD_ART">
<div id="preview">Preview</div>
<p id="late-mask">Balance LATE-MASKED-12</p><div id="late-hide"><p>LATE-HIDDEN-13</p></div>
<p>After the form</p>
<script>
  // As a framework's controlled field does: the value attribute follows every keystroke.
  pw.addEventListener('input', () => pw.setAttribute('value', pw.value));
  // And another element's attribute echoes it (a preview's data, a tooltip).
  pw.addEventListener('input', () => preview.setAttribute('data-echo', pw.value));
  // The page's title names the password beside a card number.
  pw.addEventListener('change', () => {
    document.title = 'Card 4111 1111 1111 1111 for ' + pw.value;
  });
</script>
""".replace("CARD_ART", CARD_ART)


def test_typing_and_choosing_in_hidden_fields_tells_neither_length_nor_choice(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Typing into a password whose value attribute a framework keeps in step (and another
    element's attribute echoes), and into a hidden editor, sends no change per keystroke, nor
    how far the field, a textarea or the editor scrolled; choosing a hidden radio button and
    ticking a hidden box sends nothing that names them; selecting the hidden editor's text sends
    no offsets; a refresh's address and a `<meta>`'s token are not sent; a card number an SVG
    image draws is masked; the title's copy of the password beside a card number is masked
    whole; a mask or hide mark the page adds after its element was sent takes what it marks out
    of the mirror."""
    url = other_origin.page("typing.html", TYPING, live, title="Sign up")
    customer.page.goto(url)
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the form")).to_be_attached()
    page = customer.page
    page.locator("#pw").press_sequentially("Zebra9Tango-pass", delay=10)
    page.locator("#pw").blur()
    expect(page).to_have_title(re.compile("Zebra9Tango"))
    page.locator("#story").press_sequentially("one\ntwo\nthree\nfour\nfive", delay=10)
    page.locator("#gold").check()
    page.locator("#trial").check()
    page.keyboard.press("ArrowUp")  # keyboard: focus and choice move together (to Gold)
    expect(page.locator("#gold")).to_be_checked()
    for _ in range(3):
        page.locator("#smoker").click()
    page.locator("#note").click()
    page.keyboard.press("End")
    page.keyboard.type(" Sir,\nmy card\nis\nlost", delay=10)
    page.keyboard.press("Shift+Home")  # a selection of all the editor's text
    page.keyboard.press("End")
    # Marks the page adds after what they mark was sent (a framework's, after its first render).
    expect(view.locator("#late-hide")).to_contain_text("LATE-HIDDEN-13")
    page.evaluate(
        """() => {
        document.getElementById('late-mask').classList.add('rr-mask');
        document.getElementById('late-hide').classList.add('rr-block');
    }"""
    )
    caught_up(customer, view)
    expect(view.locator("#late-mask")).not_to_contain_text("LATE-MASKED-12")
    expect(view.locator("body")).not_to_contain_text("LATE-HIDDEN-13")  # a box, without its id

    events = _events(agent)
    ids = _recorded_ids(events)
    for element in ("pw", "preview"):
        attribute_changes = [
            change
            for mutation in _incremental(events, 0)
            for change in mutation.get("attributes", [])
            if change["id"] == ids[element]
        ]
        assert len(attribute_changes) <= 1, f"one change a keystroke: {attribute_changes}"
    hidden = {ids["pw"], ids["story"], ids["note"]}
    scrolled = [e for e in _incremental(events, 3) if e["id"] in hidden]
    assert scrolled == [], f"a hidden field's scrolling told its text's width: {scrolled}"
    text_changes = [
        change
        for mutation in _incremental(events, 0)
        for change in mutation.get("texts", [])
        if change["id"] == ids["note.text"]
    ]
    assert text_changes == [], f"the hidden editor's text changed per keystroke: {text_changes}"
    choices = {ids[name] for name in ("basic", "gold", "trial", "smoker")}
    told = [e for e in _incremental(events, 5) + _incremental(events, 2) if e.get("id") in choices]
    assert told == [], f"events named the hidden choices: {told}"
    editor = {ids["note"], ids["note.text"]}
    offsets = [
        r
        for e in _incremental(events, 14)
        for r in e["ranges"]
        if r["start"] in editor or r["end"] in editor
    ]
    assert offsets == [], f"a selection told where in the hidden text: {offsets}"

    frames = agent_plaintext(agent)
    mirror = view.locator("html").evaluate("(el) => el.outerHTML")
    for where, seen in (("the frames", frames), ("the mirror", mirror)):
        for leak in ("REFRESH-TOKEN-5521", "CSRF-TOKEN-5522", "Zebra", "Tango", "4111"):
            assert leak not in seen, f"{leak!r} reached the agent in {where}"
    assert not view.locator("#gold").is_checked()
    assert not view.locator("#smoker").is_checked()
    # The mirror is live: the editor shows the placeholder, the page its text.
    expect(view.locator("#note")).to_contain_text(PLACEHOLDER)


HELD = """
<link rel="canonical" href="https://shop.example/account?session=LINK-TOKEN-14">
<style>#echo::before { content: attr(data-copy) }</style>
<form action="/account/save?token=ACTION-TOKEN-15">
<label for="secret">Secret word</label><input id="secret" data-tandem-unmask type="password">
<input id="by-attribute"><input id="by-default"><input id="by-property">
<select id="plan"><option value="">Choose</option><option value="PLAN-VALUE-A">PLAN-LABEL-A</option>
  <option value="PLAN-VALUE-B">PLAN-LABEL-B</option></select>
<textarea id="notes"></textarea>
<div id="editor" contenteditable="true" style="min-height:2em"></div>
</form>
<div id="echo" data-copy="">echo</div>
<div id="elsewhere" data-tandem-unmask></div>
<iframe id="frame" srcdoc="<p>In the frame</p>"></iframe>
<canvas id="drawing" width="80" height="20"></canvas>
<p>After the form</p>
"""

# Each a value the page or the customer puts where masking must catch it.
HELD_SECRETS = [
    "Quokka-77-secret",  # typed into the password field, then copied, cloned and moved
    "ATTRIBUTE-SECRET-1",
    "DEFAULT-SECRET-2",
    "PROPERTY-SECRET-3",
    "PLAN-VALUE-A",
    "PLAN-VALUE-B",
    "PLAN-LABEL-B",
    "TEXTAREA-NODE-4",
    "CANVAS-SECRET-5",
    "CONSOLE-SECRET-6",
    "PASTED-SECRET-7",
    "PASTE-TOKEN-8",
    "INSERTED-SECRET-9",
    "QUERY-TOKEN-10",
    "HASH-TOKEN-11",
    "LINK-TOKEN-14",
    "ACTION-TOKEN-15",
    "4000056655665556",
]


def test_hidden_values_set_by_script_moved_or_copied_never_reach_the_agent(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """What held (no change needed), on one page: values set by script (the `value` attribute,
    `defaultValue`, `value`, an option chosen, a textarea's text nodes); a filled password
    copied into a `data-*` a style sheet shows (`content: attr()`), cloned as a text field into
    content the site shows, moved into a shadow root and adopted by a same-origin frame; text
    pasted and inserted into a hidden editor; a canvas drawn and exported as an image, the
    console; the page address's query and fragment, a form's `action` and a link's query.
    Nothing but rrweb's snapshots, changes and the page's metadata is recorded (no console,
    canvas or plugin events)."""
    url = other_origin.page("held.html", HELD, live, title="Account")
    customer.page.goto(f"{url}?card=4000056655665556&q=QUERY-TOKEN-10#HASH-TOKEN-11")
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the form")).to_be_attached()
    page = customer.page
    page.locator("#secret").press_sequentially("Quokka-77-secret", delay=10)
    page.select_option("#plan", "PLAN-VALUE-A")
    page.evaluate(
        """() => {
        const $ = (id) => document.getElementById(id);
        $('by-attribute').setAttribute('value', 'ATTRIBUTE-SECRET-1');
        $('by-default').defaultValue = 'DEFAULT-SECRET-2';
        $('by-property').value = 'PROPERTY-SECRET-3';
        $('plan').options[2].selected = true;
        $('notes').textContent = 'TEXTAREA-NODE-4';
        $('notes').append(document.createTextNode('TEXTAREA-NODE-4 again'));
        $('echo').setAttribute('data-copy', $('secret').value);
        const clone = $('secret').cloneNode();
        clone.type = 'text';
        clone.id = 'clone';
        $('elsewhere').append(clone);
        const host = document.createElement('div');
        $('elsewhere').append(host);
        host.attachShadow({mode: 'open'}).append($('secret'));
        const frame = $('frame').contentDocument;
        frame.body.append(frame.adoptNode($('by-property')));
        const drawing = $('drawing').getContext('2d');
        drawing.fillText('CANVAS-SECRET-5', 1, 10);
        const image = new Image();
        image.src = $('drawing').toDataURL();
        $('elsewhere').append(image);
        console.log('CONSOLE-SECRET-6');
    }"""
    )
    page.locator("#editor").click()
    page.evaluate(
        """() => document.execCommand('insertHTML', false,
        '<a href="https://files.example/a?t=PASTE-TOKEN-8">PASTED-SECRET-7</a>')"""
    )
    page.keyboard.insert_text(" INSERTED-SECRET-9")
    expect(page.locator("#elsewhere #clone")).to_have_value("Quokka-77-secret")
    caught_up(customer, view)

    events = _events(agent)
    frames = agent_plaintext(agent)
    mirror = view.locator("html").evaluate("(el) => el.outerHTML")
    for where, seen in (("the frames", frames), ("the mirror", mirror)):
        for secret in HELD_SECRETS:
            assert secret not in seen, f"{secret!r} reached the agent in {where}"
    # Snapshots, changes and the page's metadata only: no plugin (console), no canvas drawing.
    assert {e["type"] for e in events} <= {2, 3, 4}
    assert not _incremental(events, 9), "a canvas was recorded"
    expect(view.locator("#clone")).to_have_value(PLACEHOLDER)


def test_a_policy_tag_after_the_sdk_masks_the_page_the_session_moves_to(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The session goes on, on the site's next page, where the SDK's script (in the head) runs
    before the page's own `#tandem-policy` tag (in the body) is parsed: that page's masks hold,
    not the first page's policy alone."""
    first = other_origin.page("first.html", "<p>First page</p>", live, title="First")
    second = other_origin.page(
        "second.html",
        """<p class="balance">Balance BALANCE-SECRET-42</p>
<script type="application/json" id="tandem-policy">{"version": 1, "mask": [".balance"]}</script>
<p>Second page</p>""",
        live,
        title="Second",
    )
    customer.page.goto(first)
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, live, code)
    expect(view.get_by_text("First page")).to_be_attached()
    customer.page.goto(second)
    expect(view.get_by_text("Second page")).to_be_attached()
    caught_up(customer, view)
    expect(view.locator(".balance")).to_contain_text("\u2022")
    assert "BALANCE-SECRET-42" not in agent_plaintext(agent)
    assert "BALANCE-SECRET-42" not in view.locator("html").evaluate("(el) => el.outerHTML")
