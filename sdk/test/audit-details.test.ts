// An audit record's details as the auditor's console shows them (../src/console/office.ts).
import { document } from "./dom.ts";
import assert from "node:assert/strict";
import { test } from "node:test";
import { auditDetails, table } from "../src/console/office.ts";

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
    "method: \ufffdoidc", // the override shown, not obeyed
    "ip: 203.0.113.9",
    "count: 3",
  ]);
});

test("a name in the office pages' lists shows its invisible characters: it cannot pass for another's", () => {
  // The relay (or a name an earlier version stored) sends "Ann Smith" with an invisible mark,
  // a zero-width space, a Hangul filler or marks stacked deep.
  const shown = inPage(() => table(["Account", "Name"], [
    ["ann2", "Ann Smith\u200e"], ["ann3", "Ann\u200bSmith"], ["ghost", "\u3164"], ["z", `Z${"\u0301".repeat(300)}`],
  ]));
  const cells = [...shown.querySelectorAll("tbody tr")].map((row) => row.children[1].textContent);
  assert.deepEqual(cells, ["Ann Smith\ufffd", "Ann\ufffdSmith", "\ufffd", `Z${"\u0301".repeat(4)}`]);
});
