import assert from "node:assert/strict";
import { test } from "node:test";
import { LOCALES, type Catalogues, missingKeys, placeholders } from "../src/shared/i18n.ts";
import { accountMessages } from "../src/console/messages/account.ts";
import { complianceMessages } from "../src/console/messages/compliance.ts";
import { messages as widgetMessages } from "../src/share/messages/widget.ts";
import { workspaceMessages } from "../src/console/messages/workspace.ts";

// The account pages (two-step sign-in, recovery codes, password change) and the compliance pages
// (issue 15, "Brand and language"); the widget's and the workspace's catalogues have their own
// tests (widget-messages, workspace), the reconnect words are checked here too.
const catalogues: [string, Catalogues<Record<string, string>>][] = [
  ["account", accountMessages],
  ["compliance", complianceMessages],
];

for (const [name, catalogue] of catalogues) {
  test(`every locale of the ${name} catalogue has every message, with the English placeholders`, () => {
    assert.deepEqual(missingKeys(catalogue), {});
    for (const locale of LOCALES) {
      const messages = catalogue[locale] as Record<string, string>;
      for (const key of Object.keys(catalogue.en)) {
        assert.deepEqual(placeholders(messages[key]), placeholders(catalogue.en[key]), `${name} ${locale} ${key}`);
      }
    }
  });
}

test("the account and compliance pages are translated, not copied (same words only for names)", () => {
  // Words a language shares with English on these pages: proper names and the loan word.
  const shared = new Set(["Compliance", "Sessions"]);
  for (const [name, catalogue] of catalogues) {
    for (const locale of LOCALES.filter((l) => l !== "en")) {
      const messages = catalogue[locale] as Record<string, string>;
      for (const [key, english] of Object.entries(catalogue.en)) {
        if (shared.has(english) || english.length <= 4) continue; // "n/a", "FAIL", "pass"
        assert.notEqual(messages[key], english, `${name} ${locale} ${key} is still English`);
      }
    }
  }
});

test("the reconnect words of the widget and the console exist in every locale", () => {
  for (const locale of LOCALES) {
    for (const key of ["reconnectingSelf", "reconnectingAgent", "linkReconnecting"]) {
      assert.ok((widgetMessages[locale] as Record<string, string>)[key], `widget ${locale} ${key}`);
    }
    for (const key of ["linkReconnecting", "linkRestored", "reconnectLost", "reconnectRejoined", "reconnectGaveUp", "reconnectGone", "reconnectNoKeys"]) {
      assert.ok((workspaceMessages[locale] as Record<string, string>)[key], `workspace ${locale} ${key}`);
    }
  }
});
