import assert from "node:assert/strict";
import { test } from "node:test";
import { encodePayload, MAX_PARTS, PayloadDecoder, PayloadError } from "../src/shared/payload.ts";
import { formatCode } from "../src/shared/protocol.ts";

test("a small payload is one frame and round-trips", () => {
  const payload = { k: "events" as const, events: [{ type: 2, data: { text: "héllo" } }] };
  const frames = encodePayload(payload);
  assert.equal(frames.length, 1);
  assert.deepEqual(new PayloadDecoder().push(frames[0]), payload);
});

test("a large payload is split under the limit and reassembled", () => {
  const payload = { k: "events" as const, events: Array.from({ length: 500 }, (_, i) => ({ i, text: "ü".repeat(200) })) };
  const frames = encodePayload(payload, 8 * 1024);
  assert.ok(frames.length > 1);
  for (const frame of frames) assert.ok(frame.byteLength <= 8 * 1024);
  const decoder = new PayloadDecoder();
  const results = frames.map((frame) => decoder.push(frame));
  assert.deepEqual(results.slice(0, -1), new Array(frames.length - 1).fill(null));
  assert.deepEqual(results.at(-1), payload);
});

test("a payload needing too many parts is refused", () => {
  const payload = { k: "events" as const, events: ["x".repeat(10_000)] };
  assert.throws(() => encodePayload(payload, 128 + 3 * 100), PayloadError);
  assert.ok(MAX_PARTS >= 2);
});

test("garbage frames raise PayloadError and never hang", () => {
  const decoder = new PayloadDecoder();
  for (const bad of [new Uint8Array([0xff, 0xfe]), new TextEncoder().encode("{}"),
    new TextEncoder().encode('{"k":"part","id":1,"i":5,"n":2,"d":""}'), new TextEncoder().encode("[1,2]")]) {
    assert.throws(() => decoder.push(bad), PayloadError);
  }
});

test("a new part id abandons an incomplete payload", () => {
  const decoder = new PayloadDecoder();
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  assert.equal(decoder.push(enc({ k: "part", id: 1, i: 0, n: 2, d: '{"k":"eve' })), null);
  assert.equal(decoder.push(enc({ k: "part", id: 2, i: 0, n: 2, d: '{"k":"events",' })), null);
  assert.deepEqual(decoder.push(enc({ k: "part", id: 2, i: 1, n: 2, d: '"events":[]}' })), { k: "events", events: [] });
});

test("codes are shown in groups of three", () => {
  assert.equal(formatCode("123456789"), "123 456 789");
  assert.equal(formatCode("012345"), "012 345");
});

import { MAX_PAYLOAD_BYTES as LIMIT, UnpackStreams } from "../src/shared/payload.ts";

/** A frame as earlier versions packed it: flag 0 as is, flag 1 deflated on its own in the browser. */
async function legacyPack(frame: Uint8Array, deflate: boolean): Promise<Uint8Array> {
  if (!deflate) return Uint8Array.of(0, ...frame);
  const stream = new Blob([frame as BlobPart]).stream().pipeThrough(new CompressionStream("deflate-raw"));
  return Uint8Array.of(1, ...new Uint8Array(await new Response(stream).arrayBuffer()));
}

test("frames packed by earlier versions (raw, or deflated on their own) still unpack", async () => {
  const small = new TextEncoder().encode("hi");
  const large = new TextEncoder().encode("abc".repeat(2048));
  const unpacking = new UnpackStreams();
  assert.deepEqual(await unpacking.unpack(await legacyPack(small, false), 1), small);
  assert.deepEqual(await unpacking.unpack(await legacyPack(large, true), 1), large);
  assert.deepEqual(await unpacking.unpack(await legacyPack(large, true), 1), large);
});

test("unpack refuses a decompression bomb and unknown encodings", async () => {
  const bomb = await legacyPack(new Uint8Array(LIMIT * 3), true);
  await assert.rejects(new UnpackStreams().unpack(bomb, 1), PayloadError);
  await assert.rejects(new UnpackStreams().unpack(Uint8Array.of(7, 1, 2), 1), PayloadError);
  await assert.rejects(new UnpackStreams().unpack(new Uint8Array(0), 1), PayloadError);
});

test("the customer's consent travels as its own payload, and only in that exact form", () => {
  const decoder = new PayloadDecoder();
  const [frame] = encodePayload({ k: "consented" });
  assert.deepEqual(decoder.push(frame), { k: "consented" });
  assert.throws(() => decoder.push(new TextEncoder().encode('{"k":"consent"}')), PayloadError);
});

test("a context's origin is an http(s) origin or the payload is refused", () => {
  const context = (origin: unknown) =>
    new TextEncoder().encode(JSON.stringify({ k: "context", origin, title: "Shop", device: "desktop", viewport: { w: 800, h: 600 } }));
  for (const origin of ["https://shop.example", "http://127.0.0.1:8080", "https://xn--bcher-kva.example"]) {
    assert.equal((new PayloadDecoder().push(context(origin)) as { origin?: string }).origin, origin);
  }
  // A look-alike host is shown in its ASCII form only (punycode): its Unicode spelling is refused.
  const lookalikes = ["https://\u0430pple.example", "https://shop.example\u202e", "https://sh\u200bop.example"];
  for (const origin of ["not a url", "javascript:alert(1)", "data:text/html,x", "https://shop.example/path", "HTTPS://Shop.example", "null", "", 7, ...lookalikes]) {
    assert.throws(() => new PayloadDecoder().push(context(origin)), PayloadError, String(origin));
  }
});

test("a refusal's words are a sentence at most", () => {
  const refusal = (reason: unknown, code?: unknown) => new TextEncoder().encode(JSON.stringify({ k: "action_refused", reason, code }));
  assert.equal((new PayloadDecoder().push(refusal("That part of the page is gone.", "gone")) as { reason?: string }).reason,
    "That part of the page is gone.");
  assert.throws(() => new PayloadDecoder().push(refusal("x".repeat(201))), PayloadError);
  assert.throws(() => new PayloadDecoder().push(refusal("Gone.", "y".repeat(201))), PayloadError);
});

test("a recording's key id is a key id: a page's sentence in its place is refused", () => {
  const recording = (key_id: unknown) => new TextEncoder().encode(JSON.stringify({ k: "recording", on: true, key_id }));
  const id = "AbCdEfGhIjKlMnOpQrSt_-";
  assert.equal((new PayloadDecoder().push(recording(id)) as { key_id?: string }).key_id, id);
  assert.equal((new PayloadDecoder().push(recording(null)) as { key_id?: string | null }).key_id, null);
  assert.equal((new PayloadDecoder().push(recording("")) as { key_id?: string }).key_id, "");
  // The console puts it in "Recording, with the customer's consent (key {key})…".
  for (const lie of ["x). Your sign-in expired: type your password into the page (x", `${id} `, `${id}\u202e`, id.slice(1)]) {
    assert.throws(() => new PayloadDecoder().push(recording(lie)), PayloadError, JSON.stringify(lie));
  }
});
