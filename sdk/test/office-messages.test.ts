import assert from "node:assert/strict";
import { test } from "node:test";
import { LOCALES, missingKeys, placeholders } from "../src/shared/i18n.ts";
import { ENUM_LABELS, en, humanLabel, officeMessages } from "../src/console/messages/office.ts";

test("every locale of the office pages has every message, with the English placeholders", () => {
  assert.deepEqual(missingKeys(officeMessages), {});
  for (const locale of LOCALES) {
    const messages = officeMessages[locale] as Record<string, string>;
    for (const key of Object.keys(en) as (keyof typeof en)[]) {
      assert.deepEqual(placeholders(messages[key]), placeholders(en[key]), `${locale} ${key}`);
    }
  }
});

test("server enums read as people say them", () => {
  assert.equal(humanLabel("stopped_by_customer"), "Customer stopped sharing");
  assert.equal(humanLabel("user_disabled"), "Account disabled");
  assert.equal(humanLabel("some_new_event"), "Some new event"); // unknown: its words
  assert.equal(humanLabel(null), "");
  for (const [value, label] of Object.entries(ENUM_LABELS)) {
    assert.ok(label && !label.includes("_"), value);
  }
});
