"""A page's text changed after the first snapshot, as the agent's mirror shows it.

Every text change (rrweb's mutation ``texts``) was passed through the console's CSS neutraliser,
whatever its parent: a help article's text changed to mention ``url(...)``, or a label changed to
a Windows path (a backslash), showed altered in the mirror. Only a change that may land in a
``<style>`` is neutralised now (``sdk/src/console/assets.ts``, ``StyleParents``); the page's own
``<style>`` changed to fetch still reaches the mirror without its address.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share, start_on

PAGE = """
<style id="page-style">h1 { color: rgb(1, 2, 3) }</style>
<h1>Help article</h1>
<p id="article">Loading</p>
<label id="folder" for="f">Folder</label><input id="f" value="">
"""

CHANGE = """(spy) => {
  document.getElementById('article').firstChild.data =
    'Write url(https://docs.example/a.png) in CSS';
  document.getElementById('folder').firstChild.data = 'C:\\\\Users\\\\me';
  document.getElementById('page-style').firstChild.data =
    `h1 { color: rgb(4, 5, 6); background-image: url(${spy}/leak.png) }`;
}"""


def test_page_text_changed_to_read_like_css_shows_as_written_and_a_style_changed_is_neutralised(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    spy = "http://spy.invalid"
    url = other_origin.page("article.html", PAGE, live, title="Article")
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    heading = view.get_by_role("heading", name="Help article")
    expect(heading).to_have_css("color", "rgb(1, 2, 3)")
    caught_up(customer, view)
    customer.page.evaluate(CHANGE, spy)
    expect(view.locator("#article")).to_have_text("Write url(https://docs.example/a.png) in CSS")
    expect(view.locator("#folder")).to_have_text("C:\\Users\\me")
    # The <style>'s text changed: it applies, without its address.
    expect(heading).to_have_css("color", "rgb(4, 5, 6)")
    css = view.locator("#page-style").evaluate("(s) => s.textContent")
    assert "spy.invalid" not in css, css
    assert heading.evaluate("(h) => getComputedStyle(h).backgroundImage") == "none"


SVG_STYLE = """(spy) => {
  const style = document.createElementNS('http://www.w3.org/2000/svg', 'x:style');
  style.appendChild(document.createTextNode('h1 { color: rgb(7, 8, 9) }'));
  document.getElementById('drawing').appendChild(style);
}"""

SVG_STYLE_CHANGE = """(spy) => {
  document.getElementById('drawing').lastChild.firstChild.data =
    `h1 { color: rgb(10, 11, 12); background-image: url(${spy}/svg.png) }`;
}"""


def test_an_svg_style_under_a_prefixed_name_is_css_its_change_loses_its_address(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    # createElementNS(svg, 'x:style') is an SVG <style> (local name style): the browser applies its
    # text; rrweb records its name as written, and no isStyle flag on its text.
    spy = "http://spy.invalid"
    page = PAGE + '<svg id="drawing" width="1" height="1"></svg>'
    url = other_origin.page("drawing.html", page, live, title="Drawing")
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    heading = view.get_by_role("heading", name="Help article")
    expect(heading).to_have_css("color", "rgb(1, 2, 3)")
    caught_up(customer, view)
    customer.page.evaluate(SVG_STYLE, spy)
    expect(heading).to_have_css("color", "rgb(7, 8, 9)")
    customer.page.evaluate(SVG_STYLE_CHANGE, spy)
    expect(heading).to_have_css("color", "rgb(10, 11, 12)")
    assert heading.evaluate("(h) => getComputedStyle(h).backgroundImage") == "none"
