"""A site pins the SDK with the tag `tandem sdk` prints: the browser runs it only if its bytes are
the ones pinned. A relay that serves altered code (here a route answering for the server, as a
compromised server would) gets it refused by the customer's browser; the SDK never runs."""

from __future__ import annotations

from playwright.sync_api import Route, expect

from tests.conftest import RunningServer
from tests.e2e.conftest import SDK_FILE, OtherOrigin, Party, share
from tests.server.test_sdk_pin import TAG, tandem_sdk


def pinned_page(other_origin: OtherOrigin, tag: str) -> str:
    (other_origin.root / "pinned.html").write_text(
        "<!doctype html><html><head><meta charset=utf-8><title>Pinned</title>"
        f"{tag}</head><body><main><h1>Pinned page</h1><p>Text the agent sees</p></main>"
        "</body></html>"
    )
    return f"{other_origin.origin}/pinned.html"


def printed_tag(*args: str) -> str:
    result = tandem_sdk(*args)
    assert result.returncode == 0, result.stderr
    tag = result.stdout.strip()
    assert TAG.match(tag), tag
    return tag


def session_works(customer: Party, agent: Party, live: RunningServer, url: str) -> None:
    customer.page.goto(url)
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, live, code)
    expect(view.get_by_text("Text the agent sees")).to_be_visible()


def test_the_pinned_sdk_runs_on_another_origin(
    live: RunningServer, customer: Party, agent: Party, other_origin: OtherOrigin
) -> None:
    tag = printed_tag("--base-url", live.base)
    session_works(customer, agent, live, pinned_page(other_origin, tag))


def test_altered_sdk_bytes_under_the_pinned_tag_never_run(
    live: RunningServer, customer: Party, other_origin: OtherOrigin
) -> None:
    url = pinned_page(other_origin, printed_tag("--base-url", live.base))
    genuine = SDK_FILE.read_bytes()
    answer = {"body": genuine}

    def relay(route: Route) -> None:
        route.fulfill(
            status=200,
            body=answer["body"],
            headers={
                "content-type": "text/javascript",
                "access-control-allow-origin": other_origin.origin,
            },
        )

    messages: list[str] = []
    customer.page.on("console", lambda message: messages.append(message.text))
    customer.page.route(f"{live.base}/sdk/tandem.js", relay)

    customer.page.goto(url)  # the route itself passes genuine bytes through
    assert customer.page.evaluate("() => typeof window.Tandem") == "object"

    answer["body"] = genuine + b"\n;window.stolen = document.cookie;"
    customer.page.goto(url)
    expect(customer.page.get_by_role("heading", name="Pinned page")).to_be_visible()
    assert customer.page.evaluate("() => typeof window.Tandem") == "undefined"
    assert customer.page.evaluate("() => 'stolen' in window") is False
    assert any("integrity" in message for message in messages), messages


def test_a_copy_on_the_sites_own_origin_runs_and_reaches_the_server(
    live: RunningServer, customer: Party, agent: Party, other_origin: OtherOrigin
) -> None:
    tag = printed_tag(
        "--base-url", live.base, "--copy-to", str(other_origin.root), "--src", "/tandem.js"
    )
    assert 'src="/tandem.js"' in tag
    session_works(customer, agent, live, pinned_page(other_origin, tag))
