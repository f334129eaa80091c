/**
 * rrweb's numbering of recorded events, as the customer's recorder writes it and the console's
 * replayer reads it: event types (rrweb's `EventType`), incremental sources (`IncrementalSource`)
 * and serialized node types (rrweb-snapshot's `NodeType`, not the DOM's `nodeType`). The code
 * that reads events without rrweb (masking, asset carrying, batching) takes them from here, in
 * one place; test/rrweb-events.test.ts holds them to the rrweb version in package.json.
 */

/** Event types. */
export const FULL_SNAPSHOT = 2;
export const INCREMENTAL_SNAPSHOT = 3;
export const META = 4;

/** Incremental sources (the `data.source` of an INCREMENTAL_SNAPSHOT event). */
export const MUTATION = 0;
export const MOUSE_MOVE = 1;
export const MOUSE_INTERACTION = 2;
export const SCROLL = 3;
export const INPUT = 5;
export const TOUCH_MOVE = 6;
export const MEDIA_INTERACTION = 7;
export const STYLE_SHEET_RULE = 8;
/** A web font the page loaded (rrweb's `collectFonts`, which the SDK leaves off). */
export const FONT = 10;
export const DRAG = 12;
export const STYLE_DECLARATION = 13;
export const SELECTION = 14;
export const ADOPTED_STYLE_SHEET = 15;

/** Serialized node types. */
export const SERIALIZED_ELEMENT = 2;
export const SERIALIZED_TEXT = 3;
export const SERIALIZED_CDATA = 4;
export const SERIALIZED_COMMENT = 5;
