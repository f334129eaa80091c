import assert from "node:assert/strict";
import { test } from "node:test";
import { EventType, IncrementalSource } from "rrweb";
import { NodeType } from "@rrweb/types";
import { snapshot } from "rrweb-snapshot";
import * as numbers from "../src/shared/rrweb-events.ts";
import { window } from "./dom.ts";

// The SDK reads recorded events without rrweb (masking, asset carrying, batching) by the numbers
// in src/shared/rrweb-events.ts: an rrweb upgrade that renumbers them must fail here, not mask
// or carry the wrong events in a browser.
test("the SDK's rrweb event numbers are rrweb's own", () => {
  assert.deepEqual(
    [numbers.FULL_SNAPSHOT, numbers.INCREMENTAL_SNAPSHOT, numbers.META],
    [EventType.FullSnapshot, EventType.IncrementalSnapshot, EventType.Meta],
  );
  assert.deepEqual(
    [
      numbers.MUTATION, numbers.MOUSE_MOVE, numbers.MOUSE_INTERACTION, numbers.SCROLL, numbers.INPUT,
      numbers.TOUCH_MOVE, numbers.MEDIA_INTERACTION, numbers.STYLE_SHEET_RULE, numbers.FONT, numbers.DRAG,
      numbers.STYLE_DECLARATION, numbers.SELECTION, numbers.ADOPTED_STYLE_SHEET,
    ],
    [
      IncrementalSource.Mutation, IncrementalSource.MouseMove, IncrementalSource.MouseInteraction,
      IncrementalSource.Scroll, IncrementalSource.Input, IncrementalSource.TouchMove,
      IncrementalSource.MediaInteraction, IncrementalSource.StyleSheetRule, IncrementalSource.Font, IncrementalSource.Drag,
      IncrementalSource.StyleDeclaration, IncrementalSource.Selection,
      IncrementalSource.AdoptedStyleSheet,
    ],
  );
});

test("the SDK's serialized node types are those rrweb-snapshot writes", () => {
  const doc = new window.DOMParser().parseFromString("<!doctype html><p>hi<!--note--></p>", "text/html") as unknown as Document;
  type Serialized = { type: number; tagName?: string; textContent?: string; childNodes?: Serialized[] };
  const stack = [snapshot(doc) as unknown as Serialized];
  let paragraph: Serialized | undefined;
  while (stack.length && !paragraph) {
    const node = stack.pop() as Serialized;
    if (node.tagName === "p") paragraph = node;
    stack.push(...(node.childNodes ?? []));
  }
  assert.equal(paragraph?.type, numbers.SERIALIZED_ELEMENT);
  assert.deepEqual(
    paragraph?.childNodes?.map((child) => [child.type, child.textContent]),
    [[numbers.SERIALIZED_TEXT, "hi"], [numbers.SERIALIZED_COMMENT, "note"]],
  );
  assert.deepEqual(
    [numbers.SERIALIZED_ELEMENT, numbers.SERIALIZED_TEXT, numbers.SERIALIZED_CDATA, numbers.SERIALIZED_COMMENT],
    [NodeType.Element, NodeType.Text, NodeType.CDATA, NodeType.Comment],
  );
});
