// What the console's screens (../src/console/view.ts) show of the relay's and the customer's page's
// text: names, states and titles as one plain line each.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pageTitle, sessionLine } from "../src/console/view.ts";

const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test("the relay's session list is plain text: a name's override reorders nothing, an unknown state is text", () => {
  const line = sessionLine({
    session_id: "s1", site_id: "shop", site_name: "Shop \u202e08:0 ytiruceS", state: "sharing", agent: "Ann\u2028Bob", created_at: 0,
  });
  assert.deepEqual(line, { site: "Shop \ufffd08:0 ytiruceS", agent: "Ann Bob", state: "Sharing", stateClass: "state state-sharing" });
  for (const state of ["constructor", "__proto__", "toString", "hidden good\u202e"]) {
    const odd = sessionLine({ session_id: "s2", site_id: "shop", site_name: "Shop", state, agent: null, created_at: 0 });
    assert.equal(odd.stateClass, "state", state);
    assert.equal(odd.state, state.replace("\u202e", "\ufffd"), state); // shown, not obeyed
    assert.equal(odd.agent, "no agent yet");
  }
  const empty = sessionLine({ session_id: "s3", site_id: "shop", site_name: "\u202e", state: "waiting", agent: "\u2066", created_at: 0 });
  assert.deepEqual([empty.site, empty.agent], ["\ufffd", "\ufffd"]); // a name of nothing visible
});

test("the customer's page title is one plain line among the session's facts", () => {
  assert.equal(pageTitle("Cart\u2028Control\u2029\u202euoY\u202c OK"), "Cart Control \ufffduoY\ufffd OK");
  assert.doesNotMatch(pageTitle("a\r\nb\u0085c\u2067d"), CONTROLS);
  assert.equal(pageTitle(null), "Hidden by the site's policy");
});
