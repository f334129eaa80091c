import assert from "node:assert/strict";
import { test } from "node:test";
import type { AccountEvent } from "../src/generated/rest.ts";
import { activityLine, activityNotice } from "../src/console/activity.ts";

const event = (action: string, by: string, ip: string | null = null, method: string | null = null, chosenBy: string | null = null): AccountEvent => ({
  at: 1_700_000_000,
  action,
  by,
  ip,
  method,
  chosen_by: chosenBy,
});

test("what an admin did to the account is a warning naming the admin", () => {
  assert.deepEqual(activityLine(event("mfa_reset", "ada")), { text: "ada removed your authenticator app", warn: true });
  assert.deepEqual(activityLine(event("sso_identity_bound", "ada")).warn, true);
  assert.equal(activityLine(event("password_reset", "cli")).text, "The server's operator reset your password");
});

test("the account's own sign-ins say how and from where, and only a stranger's signs warn", () => {
  assert.deepEqual(activityLine(event("sign_in", "alice", "10.9.9.9", "oidc")), {
    text: "Signed in with your organisation's identity provider from 10.9.9.9",
    warn: false,
  });
  assert.equal(activityLine(event("sign_in", "alice", "10.0.0.1", "password")).text, "Signed in with password from 10.0.0.1");
  assert.equal(activityLine(event("second_factor_failed", "alice", "10.6.6.6", "wrong")).warn, true);
  // The owner's own slip (a code left out, from the address it signs in from) is no warning.
  assert.equal(activityLine(event("second_factor_failed", "alice", "10.0.0.1", "missing"), "10.0.0.1").warn, false);
  assert.equal(activityLine(event("sign_in_other_client", "alice", "10.6.6.6")).warn, true);
});

test("a name or address the server sends is one plain line, and an unknown action is its name", () => {
  // A right-to-left override in an admin's name would turn the sentence around.
  assert.equal(activityLine(event("mfa_reset", "ada\u202Eeve")).text.includes("\u202E"), false);
  assert.equal(activityLine(event("sign_in", "alice", "10.0.0.1\u2028x", "password")).text.includes("\u2028"), false);
  assert.deepEqual(activityLine(event("constructor", "alice")), { text: "constructor", warn: false });
  assert.deepEqual(activityLine(event("sign_in", "alice", null, "constructor")).text, "Signed in with constructor from ?");
});

test("the list is shown only when something needs the owner's eye", () => {
  const here = event("sign_in", "alice", "10.0.0.1", "password");
  const notice = (events: AccountEvent[]) => {
    const { show, warnings } = activityNotice(events);
    return { show, warnings };
  };
  // Every sign-in from this one's address: nothing to see (most sign-ins of most days).
  assert.deepEqual(notice([here, here, here]), { show: false, warnings: 0 });
  // A code forgotten from here, then the right one: nothing to see.
  assert.deepEqual(notice([here, event("second_factor_failed", "alice", "10.0.0.1", "missing")]), { show: false, warnings: 0 });
  // A sign-in from elsewhere (a phishing page's relay signs in from its own address).
  assert.deepEqual(notice([here, event("sign_in", "alice", "10.9.9.9", "authenticator")]), { show: true, warnings: 0 });
  // An admin's change, seen from the same address as ever.
  assert.deepEqual(notice([here, event("mfa_reset", "ada"), here]), { show: true, warnings: 1 });
  // A sign-in another way from the same office: through the provider, for an agent who types
  // a password (an admin who bound the account to a provider account of its own).
  assert.deepEqual(notice([here, event("sign_in", "alice", "10.0.0.1", "oidc")]), { show: true, warnings: 0 });
  assert.deepEqual(notice([]), { show: false, warnings: 0 });
});

test("the account's creation names who made it and the password they chose, as plain text", () => {
  assert.deepEqual(activityLine(event("user_created", "ada", null, "temporary")), {
    text: "ada created your account; the password they chose for it: temporary (to be replaced at its first sign-in)",
    warn: false,
  });
  assert.equal(
    activityLine(event("user_created", "cli", null, "kept_by_creator")).text,
    "The server's operator created your account; the password they chose for it: kept (known to them until you change it)",
  );
  // A hostile server's strings: one plain line each, an unknown word shown as it is.
  const hostile = activityLine(event("user_created", "ada\u202Eeve\u2028<b>", null, "constructor\u202E"));
  assert.equal(/[\u202E\u2028]/.test(hostile.text), false);
  assert.equal(hostile.text.includes("<b>"), true); // text, never markup (textContent)
  assert.equal(hostile.text.includes(": constructor"), true);
  // Alone it does not bring the list up: every account an admin makes has one.
  const here = event("sign_in", "alice", "10.0.0.1", "password");
  assert.equal(activityNotice([here, event("user_created", "ada", null, "temporary")]).show, false);
});

test("a claimed temporary password names who chose it, and warns when claimed from elsewhere", () => {
  const own = event("password_changed", "nina", "10.0.0.1", null, "ada");
  assert.deepEqual(activityLine(own, "10.0.0.1"), {
    text: "Your password was chosen from 10.0.0.1, in place of the temporary one ada gave",
    warn: false,
  });
  // Ada's claim before nina's, from ada's desk: nina is warned.
  assert.equal(activityLine(event("password_changed", "nina", "10.6.6.6", null, "ada"), "10.0.0.1").warn, true);
  assert.equal(activityLine(event("password_changed", "nina", "10.0.0.1", null, "cli"), "10.0.0.1").text.includes("operator"), true);
  assert.equal(activityLine(event("password_changed", "nina", "10.0.0.1", null, "a\u202Eda")).text.includes("\u202E"), false);
  // A change of the owner's own password is no claim (its address said: see below).
  assert.deepEqual(activityLine(event("password_changed", "nina", "10.0.0.1"), "10.0.0.1"), {
    text: "Your password was changed from 10.0.0.1",
    warn: false,
  });
});

test("a claim names the operator in the sentence, and one whose chooser was not kept is still a claim", () => {
  // `chosen_by` "" : a temporary password from before revision 0019, nobody kept who chose it.
  const unknown = event("password_changed", "nina", "10.6.6.6", null, "");
  assert.deepEqual(activityLine(unknown, "10.0.0.1"), {
    text: "Your password was chosen from 10.6.6.6, in place of the temporary one someone gave",
    warn: true,
  });
  assert.equal(activityNotice([event("sign_in", "nina", "10.0.0.1", "password"), unknown]).show, true);
  assert.equal(
    activityLine(event("password_changed", "nina", "10.0.0.1", null, "cli"), "10.0.0.1").text,
    "Your password was chosen from 10.0.0.1, in place of the temporary one the server's operator gave",
  );
});

test("a change of the password says where from, and warns from elsewhere", () => {
  // Whoever claimed the account changing its password again and again in the owner's name.
  assert.deepEqual(activityLine(event("password_changed", "nina", "10.6.6.6"), "10.0.0.1"), {
    text: "Your password was changed from 10.6.6.6",
    warn: true,
  });
  assert.equal(activityLine(event("password_changed", "nina", "10.0.0.1"), "10.0.0.1").warn, false);
  // Recorded before the change kept its address.
  assert.deepEqual(activityLine(event("password_changed", "nina", null), "10.0.0.1"), { text: "Your password was changed", warn: false });
});
