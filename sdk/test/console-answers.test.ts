import assert from "node:assert/strict";
import { test } from "node:test";

import { MalformedAnswer, checkedAnswer, problemText, routeOf } from "../src/console/answers.ts";
import { REST_ANSWERS, type AgentInfo, type User } from "../src/generated/rest.ts";

const json = (value: unknown, status = 200) =>
  new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });

const ALICE: AgentInfo = {
  username: "alice", display_name: "Alice", role: "agent", org: "default", teams: ["support"],
  needs_second_factor: false, must_change_password: false,
};

const USER: User = {
  username: "bob", display_name: "Bob", role: "agent", teams: [], second_factor: false, mfa_exempt: true, disabled: false,
  sso_bound: false, password_change_required: false, temporary_password_expired: false,
};

async function refused(promise: Promise<unknown>, route: string): Promise<MalformedAnswer> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof MalformedAnswer, `not a MalformedAnswer: ${String(error)}`);
    assert.ok(error.message.includes(route), `the message names the route: ${error.message}`);
    return error;
  }
  assert.fail(`an answer to ${route} was accepted`);
}

test("every JSON route the server has is known, by method and path template", () => {
  assert.ok(REST_ANSWERS.length > 30);
  assert.equal(routeOf("GET", "/api/users")?.template, "/api/users");
  assert.equal(routeOf("GET", "/api/recordings?limit=200")?.template, "/api/recordings");
  assert.equal(routeOf("PATCH", "/api/teams/claims%20team")?.template, "/api/teams/{team}");
  assert.equal(routeOf("GET", "/api/teams/a/b"), undefined); // a parameter is one segment
  assert.equal(routeOf("DELETE", "/api/users/bob"), undefined); // answers nothing (204)
});

test("a well-formed answer passes unchanged", async () => {
  assert.deepEqual(await checkedAnswer(json(ALICE), "GET", "/api/me"), ALICE);
  assert.deepEqual(await checkedAnswer(json(["support", "claims"]), "GET", "/api/teams"), ["support", "claims"]);
  assert.equal(await checkedAnswer(new Response(null, { status: 204 }), "DELETE", "/api/users/bob"), null);
});

test("a malicious server's malformed answers are refused with a clear error, not passed on", async () => {
  const cases: [Response, string, string, string][] = [
    [json({ ...ALICE, role: 7 }), "GET", "/api/me", "GET /api/me"], // a field of the wrong type
    [json({ username: "alice" }), "POST", "/api/login", "POST /api/login"], // fields missing
    [json({ ...ALICE, is_admin: true }), "GET", "/api/me", "GET /api/me"], // an unknown field
    [json(null), "GET", "/api/users", "GET /api/users"], // null where a list is answered
    [json({ length: 1e9 }), "GET", "/api/users", "GET /api/users"], // an object posing as a list
    [json([{ ...USER, teams: "support" }]), "GET", "/api/users", "GET /api/users"],
    [json(["support", { toString: "x" }]), "GET", "/api/teams", "GET /api/teams"],
    [json({ events: [] }), "GET", "/api/audit?after=0&limit=200", "GET /api/audit"],
    [json(JSON.parse('{"__proto__": {"polluted": true}}')), "GET", "/api/org", "GET /api/org"],
    [new Response("<html>gotcha</html>", { status: 200 }), "GET", "/api/sites", "GET /api/sites"], // not JSON
    [new Response("", { status: 200 }), "GET", "/api/sites", "GET /api/sites"], // empty
    [new Response(null, { status: 204 }), "GET", "/api/users", "GET /api/users"], // nothing where data is due
    [json({ anything: 1 }), "GET", "/api/not-a-route", "GET /api/not-a-route"], // a route the console never reads
    [json(ALICE), "GET", "/api/teams/support", "GET /api/teams/{team}"], // another route's answer
  ];
  for (const [response, method, path, route] of cases) {
    const error = await refused(checkedAnswer(response, method, path), route);
    assert.ok(error.message.length < 200 && !error.message.includes("gotcha"));
  }
  assert.equal(({} as { polluted?: boolean }).polluted, undefined);
});

test("the office pages' api() checks every answer (a relay answering with the wrong shape)", async () => {
  const saved = { fetch: globalThis.fetch, document: (globalThis as { document?: unknown }).document, location: (globalThis as { location?: unknown }).location };
  const g = globalThis as unknown as { document: unknown; location: unknown; fetch: typeof fetch };
  g.document = { querySelector: () => null };
  g.location = { origin: "https://console.example", protocol: "https:", host: "console.example" };
  let answer: Response = json([]);
  g.fetch = async () => answer;
  try {
    const { api } = await import("../src/console/office.ts");
    answer = json([USER]);
    assert.deepEqual(await api<User[]>("GET", "/api/users"), [USER]);
    answer = json([{ username: "bob" }]);
    await refused(api<User[]>("GET", "/api/users"), "GET /api/users");
    answer = json({ detail: { html: "<img src=x onerror=alert(1)>" } }, 403);
    await assert.rejects(api("GET", "/api/users"), { message: "The server refused this: the account may not do it." });
    answer = json({ detail: "the admin role is required" }, 403);
    await assert.rejects(api("GET", "/api/users"), {
      message: "The server refused this: the account may not do it. The server says: “the admin role is required”",
    });
  } finally {
    g.fetch = saved.fetch;
    g.document = saved.document;
    g.location = saved.location;
  }
});

test("a refusal is said in the console's own words for its status, the server's detail quoted as its, one plain line", async () => {
  const own400 = "The server refused this as not valid.";
  assert.equal(await problemText(json({ detail: "Wrong code" }, 400)), `${own400} The server says: “Wrong code”`);
  assert.equal(await problemText(json({ detail: 42 }, 400)), own400);
  assert.equal(await problemText(json(["detail"], 400)), own400);
  assert.equal(await problemText(json(null, 500)), "The server failed to do this (500).");
  assert.equal(await problemText(new Response("<h1>502</h1>", { status: 502 })), "The server failed to do this (502).");
  assert.equal(await problemText(json({}, 418)), "The server refused this (418).");
  assert.ok((await problemText(json({ detail: "x".repeat(10_000) }, 400))).length < 600);
  // A relay's detail made to read as the console's own next line, or reordered: one quoted line.
  const hostile = await problemText(json({ detail: "saved.\nThe console says: call 0800 555 0100 \u202e" }, 409));
  assert.ok(hostile.startsWith("The server refused this: it conflicts"), hostile);
  assert.ok(hostile.endsWith("The server says: “saved. The console says: call 0800 555 0100 \ufffd”"), hostile);
  const waiting = new Response(JSON.stringify({ detail: "slow down" }), { status: 429, headers: { "retry-after": "12" } });
  assert.equal(await problemText(waiting), "Too many attempts. Try again in 12 s. The server says: “slow down”");
});
