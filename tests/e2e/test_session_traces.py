"""What a session leaves in the customer's browser once sharing stops (issue 14, item 11)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import Party, get_help, share

DATABASES = "async () => (await indexedDB.databases()).map((d) => d.name)"


def test_the_tandem_database_is_deleted_when_sharing_stops(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    view = share(customer, agent, live, get_help(customer))
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    # While sharing, the pairwise key waits in IndexedDB for page navigations.
    customer.page.wait_for_function(
        f"async () => ({DATABASES})().then((n) => n.includes('tandem'))"
    )
    customer.page.get_by_role("button", name="Stop sharing").click()
    expect(agent.page.get_by_text("Session ended")).to_be_visible()
    # Not emptied: gone. (Waits for the deletion, which the SDK starts as the session ends.)
    customer.page.wait_for_function(
        f"async () => !(await ({DATABASES})()).includes('tandem')", timeout=5000
    )
    assert "tandem" not in customer.page.evaluate(DATABASES)
