// The agent workspace (issue 15): its messages, the state rules of the pointing tools and the
// header, and the encrypted payloads and commands they travel in.
import assert from "node:assert/strict";
import { test } from "node:test";
import "./dom.ts";
import { deviceKind, visibleTitle } from "../src/share/context.ts";
import { annotationMessages } from "../src/share/messages/annotations.ts";
import { LOCALES, type Catalogues, missingKeys, placeholders } from "../src/shared/i18n.ts";
import { usePolicy } from "../src/shared/masking.ts";
import { DEFAULT_POLICY } from "../src/shared/policy.ts";
import { encodePayload, MAX_STROKE_POINTS, parseAnnotationCommand, PayloadDecoder } from "../src/shared/payload.ts";
import { t, useLocale, workspaceMessages } from "../src/console/messages/workspace.ts";
import { type LiveCard, type LiveEvent, controls, idleCard, reduceCard } from "../src/console/state.ts";
import { formatDuration } from "../src/console/view.ts";
import { document } from "./dom.ts";

function complete<E extends Record<string, string>>(catalogues: Catalogues<E>): void {
  assert.deepEqual(missingKeys(catalogues), {});
  for (const locale of LOCALES) {
    for (const [key, english] of Object.entries(catalogues.en)) {
      const translated = (catalogues[locale] as Record<string, string>)[key];
      assert.deepEqual(placeholders(translated), placeholders(english), `${locale}.${key} keeps the placeholders`);
    }
  }
}

test("the workspace's and the pointer's catalogues are complete in every locale, placeholders kept", () => {
  complete(workspaceMessages);
  complete(annotationMessages);
});

test("the console's words follow its locale", () => {
  useLocale("de");
  assert.equal(t("sessionCode"), "Sitzungscode");
  assert.equal(t("codeLength", { digits: 12 }), "Ein Hilfecode hat 12 Ziffern. Bitten Sie den Kunden, ihn noch einmal vorzulesen.");
  useLocale("en");
  assert.equal(t("sessionCode"), "Session code");
});

const card = (...events: LiveEvent[]): LiveCard => events.reduce(reduceCard, idleCard);
const consented: LiveEvent[] = [{ type: "connecting", watching: false }, { type: "joined", sessionId: "s1" }, { type: "consented", at: 1000 }, { type: "fresh", live: true }];

test("pointing tools: only after the customer's consent, never for a supervisor, dropped when the customer turns them off", () => {
  const before = card({ type: "connecting", watching: false }, { type: "joined" }, { type: "tool", tool: "laser" });
  assert.equal(before.tool, "none");
  assert.equal(controls(before).tools, true);
  const watching = card({ type: "connecting", watching: true }, { type: "joined" }, { type: "consented" }, { type: "tool", tool: "laser" });
  assert.equal(watching.tool, "none");
  assert.equal(controls(watching).tools, true);
  const laser = card(...consented, { type: "tool", tool: "laser" });
  assert.equal(laser.tool, "laser");
  assert.equal(controls(laser).tools, false);
  assert.equal(controls(laser).toolLayer, false);
  const off = reduceCard(laser, { type: "pointing", on: false });
  assert.equal(off.tool, "none");
  assert.equal(controls(off).toolLayer, true);
  assert.equal(reduceCard(off, { type: "tool", tool: "draw" }).tool, "none");
  const again = reduceCard(off, { type: "pointing", on: true });
  assert.equal(reduceCard(again, { type: "tool", tool: "draw" }).tool, "draw");
  // A tool in hand takes the mouse from the control layer; the session's end puts it down.
  const controlling = reduceCard(reduceCard(laser, { type: "control", on: true }), { type: "tool", tool: "laser" });
  assert.equal(controls(controlling).controlLayer, true);
  assert.equal(controls(reduceCard(controlling, { type: "tool", tool: "none" })).controlLayer, false);
  assert.equal(reduceCard(laser, { type: "ended", text: "Session ended", tone: "" }).tool, "none");
});

test("the header: session id from the server, context from the customer's browser, the start at consent", () => {
  const joined = card(...consented);
  assert.equal(joined.sessionId, "s1");
  assert.equal(joined.startedAt, 1000);
  const context = { origin: "https://shop.example", title: "Cart", device: "phone" as const, viewport: { w: 390, h: 844 } };
  assert.deepEqual(reduceCard(joined, { type: "context", context }).context, context);
  assert.equal(reduceCard(idleCard, { type: "context", context }).context, null, "no session, no context");
  assert.equal(reduceCard(joined, { type: "ended", text: "" }).context, null);
  assert.equal(formatDuration(65_000), "1:05");
  assert.equal(formatDuration(3_725_000), "1:02:05");
  assert.equal(formatDuration(-5), "0:00");
});

test("context and pointing payloads are checked like every other payload", () => {
  const decode = (value: unknown) => {
    try {
      return new PayloadDecoder().push(new TextEncoder().encode(JSON.stringify(value)));
    } catch {
      return null;
    }
  };
  const context = { k: "context", origin: "https://shop.example", title: null, device: "tablet", viewport: { w: 800, h: 1200 } };
  assert.deepEqual(decode(context), context);
  assert.equal(decode({ ...context, device: "fridge" }), null);
  assert.equal(decode({ ...context, title: "x".repeat(500) }), null);
  assert.equal(decode({ ...context, viewport: { w: -1, h: 2 } }), null);
  assert.equal(decode({ ...context, viewport: null }), null);
  assert.deepEqual(decode({ k: "annotations", on: false }), { k: "annotations", on: false });
  assert.equal(decode({ k: "annotations", on: "no" }), null);
  assert.deepEqual(decode({ k: "annotation_refused", reason: "masked" }), { k: "annotation_refused", reason: "masked" });
  assert.equal(decode({ k: "annotation_refused", reason: "<b>prose</b>" }), null);
  assert.equal(encodePayload({ k: "annotations", on: true }).length, 1);
});

test("annotation commands: well-formed and bounded, or nothing", () => {
  assert.deepEqual(parseAnnotationCommand({ k: "laser", x: 10, y: 20 }), { k: "laser", x: 10, y: 20 });
  assert.equal(parseAnnotationCommand({ k: "laser", x: "10", y: 20 }), null);
  assert.equal(parseAnnotationCommand({ k: "laser", x: Infinity, y: 20 }), null);
  assert.equal(parseAnnotationCommand({ k: "laser", x: 1e9, y: 20 }), null);
  assert.deepEqual(parseAnnotationCommand({ k: "laser_off" }), { k: "laser_off" });
  assert.deepEqual(parseAnnotationCommand({ k: "highlight", id: 7 }), { k: "highlight", id: 7 });
  assert.equal(parseAnnotationCommand({ k: "highlight", id: 0 }), null);
  assert.equal(parseAnnotationCommand({ k: "highlight", id: 1.5 }), null);
  const points = Array.from({ length: MAX_STROKE_POINTS }, (_, i) => [i, i]);
  assert.equal(parseAnnotationCommand({ k: "draw", points })?.k, "draw");
  assert.equal(parseAnnotationCommand({ k: "draw", points: [...points, [1, 1]] }), null);
  assert.equal(parseAnnotationCommand({ k: "draw", points: [[1, 1]] }), null);
  assert.equal(parseAnnotationCommand({ k: "draw", points: [[1, 1], [2]] }), null);
  assert.equal(parseAnnotationCommand({ k: "click", id: 3 }), null, "control is not an annotation");
  assert.equal(parseAnnotationCommand(null), null);
});

test("the page title reaches the agent only as masking lets it: masked or private-looking titles are not sent", () => {
  usePolicy(DEFAULT_POLICY);
  document.head.innerHTML = "<title>Cart · Northwind</title>";
  assert.equal(visibleTitle(document), "Cart · Northwind");
  usePolicy({ ...DEFAULT_POLICY, mask: ["title"] });
  assert.equal(visibleTitle(document), null);
  usePolicy({ ...DEFAULT_POLICY, hide: ["head"] });
  assert.equal(visibleTitle(document), null);
  usePolicy(DEFAULT_POLICY);
  document.head.innerHTML = "<title>Order for card 4111 1111 1111 1111</title>";
  assert.equal(visibleTitle(document), null);
  document.head.innerHTML = "";
  assert.equal(visibleTitle(document), null);
});

test("the device kind, from the window's width and its pointer", () => {
  assert.equal(deviceKind(390, true), "phone");
  assert.equal(deviceKind(390, false), "phone");
  assert.equal(deviceKind(820, true), "tablet");
  assert.equal(deviceKind(1440, false), "desktop");
  assert.equal(deviceKind(1440, true), "desktop");
});
