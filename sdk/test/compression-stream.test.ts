// One compression stream per epoch (issue 17): each frame is deflated into the epoch's stream and
// sync-flushed (zlib's Z_SYNC_FLUSH), so it inflates whole on arrival and later frames cost only
// what is new in them; the receiver inflates per epoch, refuses bombs and garbage with
// PayloadError only, and still reads the older encodings.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { constants, inflateRawSync } from "node:zlib";
import { Deflate, Z_SYNC_FLUSH } from "pako";
import { CONTENT_DICTIONARY } from "../src/generated/content.ts";
import {
  MAX_PAYLOAD_BYTES, PackStream, type Payload, PayloadDecoder, PayloadError, UnpackStreams, encodePayload,
} from "../src/shared/payload.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function event(i: number): Uint8Array {
  const [frame] = encodePayload({
    k: "events",
    events: [{ type: 3, timestamp: 1700000000000 + i * 37, data: { source: 0, adds: [{ parentId: 12, nextId: null, node: { type: 2, tagName: "li", attributes: { class: "cart-item" }, childNodes: [], id: 100 + i } }], removes: [], texts: [], attributes: [] } }],
  });
  return frame;
}

const CHARS = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 <>/=\"'{}[],.:;é€😀\n"];
/** Each of CHARS as its UTF-16 code units (😀 is two). */
const UNITS = CHARS.map((char) => Array.from({ length: char.length }, (_, i) => char.charCodeAt(i)));
const utf16 = new TextDecoder("utf-16le");

/** `length` characters from a seed: random letters, digits, punctuation and some non-ASCII
 * (hardly compressible, so deflate also writes stored blocks), or one letter repeated. Written as
 * UTF-16 code units and decoded at once: a string per character, joined, took three times the
 * CPU (a fifth of this file's), for the same text. */
function text(seed: number, length: number, repeated: boolean): string {
  if (repeated) return "a".repeat(length);
  const units = new Uint16Array(2 * length);
  let n = 0;
  let state = (seed | 1) >>> 0;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    for (const unit of UNITS[(state >>> 0) % UNITS.length]) units[n++] = unit;
  }
  return utf16.decode(units.subarray(0, n));
}

const MIB = 1024 * 1024;

/** Payloads as the customer's browser sends them: tiny ones, rrweb-like events, and text
 * payloads up to 1 MiB (split into parts by encodePayload). */
const payloads: fc.Arbitrary<Payload> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<Payload>({ k: "consented" }, { k: "paused" }, { k: "events", events: [] }) },
  { weight: 6, arbitrary: fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 8 }).map((events): Payload => ({ k: "events", events })) },
  {
    weight: 3,
    arbitrary: fc.record({ seed: fc.integer(), length: fc.integer({ min: 0, max: 64 * 1024 }), repeated: fc.boolean() })
      .map(({ seed, length, repeated }): Payload => ({ k: "events", events: [text(seed, length, repeated)] })),
  },
  {
    weight: 1,
    arbitrary: fc.record({ seed: fc.integer(), length: fc.integer({ min: MIB - 64, max: MIB }), repeated: fc.boolean() })
      .map(({ seed, length, repeated }): Payload => ({ k: "events", events: [text(seed, length, repeated)] })),
  },
);

test("any sequence of payloads round-trips through an epoch's stream, each frame on arrival", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(payloads, { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 9 }), async (sequence, level) => {
      const sender = new PackStream(level as 1);
      const unpacking = new UnpackStreams();
      const received = new PayloadDecoder();
      for (const payload of sequence) {
        let whole: Payload | null = null;
        for (const frame of encodePayload(payload)) {
          const packed = sender.pack(frame);
          assert.equal(packed[0], 3);
          // Everything the frame holds comes out of it alone, before any later frame is packed.
          const unpacked = await unpacking.unpack(packed, 5);
          assert.ok(Buffer.from(unpacked).equals(frame), `frame of ${frame.length} bytes`);
          whole = received.push(unpacked);
        }
        // The wire is JSON, which has no -0 (JSON.stringify writes 0): compare with what JSON carries.
        assert.deepEqual(whole, JSON.parse(JSON.stringify(payload)));
      }
    }),
    {
      numRuns: 30,
      // Always among them: a tiny payload, then 1 MiB of hardly compressible text, then tiny again.
      examples: [
        [[{ k: "consented" }, { k: "events", events: [text(7, MIB, false)] }, { k: "paused" }], 6],
        // The counterexample a CI run found: -0 inside an event, then an empty batch.
        [[{ k: "events", events: [{ "": -0 }] }, { k: "events", events: [] }], 1],
      ],
    },
  );
});

test("each frame ends on a byte boundary with the sync-flush marker, as zlib's Z_SYNC_FLUSH", () => {
  const sender = new PackStream();
  const packed: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) {
    const frame = sender.pack(event(i));
    assert.deepEqual([...frame.subarray(-4)], [0, 0, 0xff, 0xff]);
    packed.push(frame.subarray(1));
  }
  // The stream so far, as zlib itself (node's, in C) reads an unfinished stream: as the Python
  // side (`tandem recording open`, zlib.decompressobj(-15)) does.
  const joined = new Uint8Array(packed.reduce((n, p) => n + p.length, 0));
  packed.reduce((offset, p) => (joined.set(p, offset), offset + p.length), 0);
  const all = new Uint8Array(Array.from({ length: 20 }, (_, i) => [...event(i)]).flat());
  const dictionary = encoder.encode(CONTENT_DICTIONARY);
  assert.deepEqual(new Uint8Array(inflateRawSync(joined, { finishFlush: constants.Z_SYNC_FLUSH, dictionary })), all);
});

test("the dictionary makes an epoch's first frames smaller", () => {
  const withDictionary = new PackStream().pack(event(0)).length;
  const plain = new Deflate({ raw: true, level: 6, memLevel: 9 });
  plain.push(event(0), Z_SYNC_FLUSH);
  const without = plain.chunks.reduce((n, c) => n + c.length, 0) + 1;
  assert.ok(withDictionary < without * 0.8, `${withDictionary} bytes with the dictionary, ${without} without`);
});

test("streams of earlier versions (flag 2: no dictionary) still unpack; flags never mix in an epoch", async () => {
  const earlier = new Deflate({ raw: true, level: 6 });
  const receiver = new UnpackStreams();
  for (let i = 0; i < 5; i++) {
    earlier.chunks = [];
    earlier.push(event(i), Z_SYNC_FLUSH);
    const body = earlier.chunks.reduce((all, c) => Uint8Array.of(...all, ...c), new Uint8Array(0));
    assert.deepEqual(await receiver.unpack(Uint8Array.of(2, ...body), 4), event(i));
  }
  await assert.rejects(receiver.unpack(new PackStream().pack(event(5)), 4), PayloadError);
  assert.deepEqual(await receiver.unpack(new PackStream().pack(event(5)), 5), event(5));
});

test("later payloads of an epoch cost a fraction of the first", () => {
  const sender = new PackStream();
  let first = 0;
  let later = 0;
  for (let i = 0; i < 50; i++) {
    const packed = sender.pack(event(i));
    if (i === 0) first = packed.length;
    else later += packed.length;
  }
  const average = later / 49;
  assert.ok(average < first / 3, `later payloads average ${average} bytes, the first ${first}`);
  assert.ok(average < event(1).length / 5);
});

test("a new epoch starts a new stream on both sides", async () => {
  const receiver = new UnpackStreams();
  const a = new PackStream();
  for (let i = 0; i < 3; i++) await receiver.unpack(a.pack(event(i)), 1);
  const b = new PackStream(); // the customer's new epoch (a new page, a new key)
  assert.deepEqual(await receiver.unpack(b.pack(event(9)), 2), event(9));
  assert.deepEqual(await receiver.unpack(b.pack(event(10)), 2), event(10));
});

test("a lost frame breaks the rest of its epoch with PayloadError, not garbage", async () => {
  const sender = new PackStream();
  const receiver = new UnpackStreams();
  await receiver.unpack(sender.pack(event(0)), 1);
  sender.pack(encoder.encode(JSON.stringify({ k: "events", events: ["never delivered ".repeat(50)] })));
  const after = sender.pack(event(2));
  let outcome: Uint8Array | Error;
  try {
    outcome = await receiver.unpack(after, 1);
  } catch (error) {
    outcome = error as Error;
  }
  if (outcome instanceof Uint8Array) assert.notDeepEqual(outcome, event(2)); // at worst a wrong text, which JSON parsing refuses
  else assert.ok(outcome instanceof PayloadError);
});

test("a bomb in the stream is cut off at the limit, and the epoch with it", async () => {
  const sender = new PackStream(9);
  const receiver = new UnpackStreams();
  const bomb = sender.pack(new Uint8Array(MAX_PAYLOAD_BYTES * 4).fill(65));
  assert.ok(bomb.length < 20_000);
  await assert.rejects(receiver.unpack(bomb, 1), PayloadError);
  await assert.rejects(receiver.unpack(sender.pack(event(1)), 1), PayloadError); // the epoch is lost
  assert.deepEqual(await receiver.unpack(new PackStream().pack(event(1)), 2), event(1)); // the next is not
});

test("any bytes in a streamed frame raise PayloadError only", async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(2, 3), fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 4 }), async (flag, frames) => {
      const receiver = new UnpackStreams();
      for (const bytes of frames) {
        try {
          const out = await receiver.unpack(Uint8Array.of(flag, ...bytes), 1);
          assert.ok(out instanceof Uint8Array);
          decoder.decode(out);
        } catch (error) {
          assert.ok(error instanceof PayloadError, String(error));
        }
      }
    }),
    // Any bytes in one frame of each flag are fuzzed by fuzz.test.ts ("unpack: any bytes", 500
    // runs); what is new here is up to four such frames in one receiver's stream.
    { numRuns: 500 },
  );
});
