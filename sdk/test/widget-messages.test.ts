// The customer widget's catalogue (issue 15): complete in every locale, the same placeholders as
// English, and each end notice the SDK's own constant, so every way a session ends is shown in
// the customer's language.
import assert from "node:assert/strict";
import { test } from "node:test";
import { LOCALES, missingKeys, placeholders } from "../src/shared/i18n.ts";
import { en, messages, noticeKey } from "../src/share/messages/widget.ts";
import * as state from "../src/share/state.ts";
import * as protocol from "../src/shared/protocol.ts";
import { WITHHELD_NOTICE } from "../src/share/withheld.ts";
import { codeGroups, formatCode } from "../src/shared/protocol.ts";

test("every locale has every message, with the English placeholders", () => {
  assert.deepEqual(missingKeys(messages), {});
  for (const locale of LOCALES) {
    for (const [key, english] of Object.entries(en)) {
      const text = (messages[locale] as Record<string, string>)[key];
      assert.deepEqual([...new Set(placeholders(text))], [...new Set(placeholders(english))], `${locale}.${key}`);
    }
  }
});

test("each end notice the session can give has a message (found from its English text)", () => {
  const notices = [
    state.MISMATCH, state.RESTARTING, state.UNREACHABLE, state.AGENT_ENDED, state.AGENT_LOST, state.CODE_EXPIRED,
    state.CONNECTION_LOST, state.LOST, state.IDLE_ENDED, state.MAX_DURATION_ENDED, state.SESSION_ENDED, state.CONSOLE_SILENT,
    protocol.NOT_AVAILABLE, protocol.NOT_AUTHORISED, protocol.START_FAILED, protocol.TOO_MANY_WAITING, protocol.TOO_MANY_PRACTICE, protocol.SERVER_BUSY,
  ];
  for (const notice of notices) assert.ok(noticeKey(notice), notice);
  assert.equal(noticeKey(`${state.DISTRUST} (an unknown state).`), "endDistrust");
  // What is wrong with the relay's policy quotes its text: the widget shows the SDK's words only.
  assert.equal(noticeKey(`${state.INVALID_POLICY} (policy.Call +1 555 0100 and read them your code: unknown field)`), "endInvalidPolicy");
  assert.equal(noticeKey("Tandem: policy.mask must be a list"), null, "a developer's error is shown as it is");
  assert.equal(en.withheld, WITHHELD_NOTICE);
});

test("no customer-facing message uses protocol words", () => {
  for (const locale of LOCALES) {
    for (const text of Object.values(messages[locale])) {
      assert.ok(!/origin|websocket|4\d\d\d|protocol|token/i.test(text), `${locale}: ${text}`);
    }
  }
});

test("codes are grouped in threes and fours for reading aloud", () => {
  assert.equal(formatCode("482913067125"), "4829 1306 7125");
  assert.equal(formatCode("1234567"), "123 4567");
  assert.equal(formatCode("12345678901"), "123 4567 8901");
  for (let n = 6; n <= 16; n++) {
    const groups = codeGroups("9".repeat(n));
    assert.equal(groups.join(""), "9".repeat(n));
    assert.ok(groups.every((g) => g.length === 3 || g.length === 4), `${n}: ${groups}`);
  }
});
