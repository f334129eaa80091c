import assert from "node:assert/strict";
import { test } from "node:test";
import { LOCALES, missingKeys, placeholders } from "../src/shared/i18n.ts";
import { messages } from "../src/console/messages/training.ts";

test("the training catalogue has every message in every locale, with the same placeholders", () => {
  assert.deepEqual(missingKeys(messages), {});
  for (const locale of LOCALES) {
    for (const [key, english] of Object.entries(messages.en)) {
      const text = (messages[locale] as Record<string, string>)[key];
      assert.deepEqual(placeholders(text), placeholders(english), `${locale}.${key}`);
    }
  }
});
