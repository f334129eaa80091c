"""A site that requires signed-in customers: the SDK passes the token from the site's backend."""

from __future__ import annotations

import time

from joserfc import jwt
from joserfc.jwk import OctKey
from playwright.sync_api import expect

from tandem.directory import Directory, operator
from tests.conftest import RunningServer, seed_directory
from tests.e2e.conftest import OtherOrigin, Party


def test_only_customers_with_a_token_from_the_site_can_start(
    live: RunningServer, other_origin: OtherOrigin, customer: Party
) -> None:
    keys: list[str] = []
    site_id = ""

    async def require_tokens(directory: Directory) -> None:
        nonlocal site_id
        (site,) = [s for s in await directory.storage.all_sites() if s.origin != "self"]
        site_id = site.site_id
        keys.append(await directory.issue_token_key(operator("default"), site_id))
        await directory.update_site(operator("default"), site_id, require_token=True)

    seed_directory(live.settings.data_dir, require_tokens)
    now = int(time.time())
    # What the site's backend does for its signed-in customer (docs/administration.md):
    token = jwt.encode(
        {"alg": "HS256"},
        {"sub": "customer-7", "aud": site_id, "iat": now, "exp": now + 300},
        OctKey.import_key(keys[0].encode()),
    )
    url = other_origin.page("account.html", "<h1>Your account</h1>", live)
    customer.page.goto(url)
    refused = customer.page.evaluate(
        "() => window.Tandem.start().then(() => null, (e) => [e.message, e.serverWords])"
    )
    assert "token" not in refused[0]  # the SDK's own words, which a site may show
    assert "customer token" in refused[1]  # the server's reason, for the site's developers
    # The customer reads plain words, never the server's.
    expect(customer.page.get_by_role("alert")).to_contain_text("Help could not start on this page")
    expect(customer.page.get_by_role("alert")).not_to_contain_text("token")

    customer.page.goto(url)
    code = customer.page.evaluate("(token) => window.Tandem.start({token})", token)
    assert len(code.replace(" ", "")) == 12
