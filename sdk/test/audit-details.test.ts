// An audit record's details as the auditor's console shows them (../src/console/office.ts).
import { document } from "./dom.ts";
import assert from "node:assert/strict";
import { test } from "node:test";
import { auditDetails } from "../src/console/office.ts";

/** `make()` with the test DOM as the page's `document` (office.ts makes its elements there). */
function inPage<T>(make: () => T): T {
  const globals = globalThis as Record<string, unknown>;
  const had = globals.document;
  globals.document = document;
  try {
    return make();
  } finally {
    globals.document = had;
  }
}

test("each detail of an audit record is a line of its own: a value cannot add details or reorder the others", () => {
  const shown = inPage(() => auditDetails({
    reason: "no account is bound to that provider account (subject \"x\"); outcome: signed in; account: alice",
    method: "\u202eoidc",
    ip: "203.0.113.9",
    count: 3,
  }));
  const lines = [...shown.children].map((line) => line.textContent);
  assert.deepEqual(lines, [
    "reason: no account is bound to that provider account (subject \"x\"); outcome: signed in; account: alice",
    "method: oidc",
    "ip: 203.0.113.9",
    "count: 3",
  ]);
});
