// Large frames (a big page's full snapshot in parts) deflated each on its own with the native
// CompressionStream (flag 1), outside the epoch's pako stream (issue 17, item 4): each is a
// complete raw deflate stream that zlib reads whole, the receiver inflates it natively but
// refuses bombs, garbage and cut streams with PayloadError only, and the epoch's stream carries
// on around them untouched.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import {
  ALONE_FROM_BYTES, MAX_PAYLOAD_BYTES, PackStream, type Payload, PayloadDecoder, PayloadError, UnpackStreams,
  encodePayload, packAlone,
} from "../src/shared/payload.ts";

const encoder = new TextEncoder();

/** A full snapshot's worth of rrweb-like JSON: `rows` products of a shop's list. */
function snapshot(rows: number, seed = 0): Payload {
  const nodes = Array.from({ length: rows }, (_, i) => ({
    type: 2, tagName: "article", attributes: { class: "row" }, id: 10 + i * 3,
    childNodes: [{ type: 3, id: 11 + i * 3, textContent: `Product ${i + seed}: shell, taped seams, colour ${(i * 7 + seed) % 13}` }],
  }));
  return { k: "events", events: [{ type: 2, timestamp: 1700000000000 + seed, data: { node: { type: 0, childNodes: nodes } } }] };
}

function small(i: number): Uint8Array {
  return encodePayload({ k: "events", events: [{ type: 3, timestamp: 1700000000000 + i, data: { source: 2, type: 1, id: i } }] })[0];
}

test("a large frame packed on its own is flag 1, a complete raw deflate stream, and unpacks whole", async () => {
  const [frame] = encodePayload(snapshot(2000));
  assert.ok(frame.length >= ALONE_FROM_BYTES && frame.length <= MAX_PAYLOAD_BYTES, `${frame.length} bytes`);
  const packed = await packAlone(frame);
  assert.equal(packed[0], 1);
  assert.ok(packed.length < frame.length / 5, `${packed.length} of ${frame.length} bytes`);
  // zlib (as `tandem recording open` reads flag 1) finishes the stream: no flush marker needed.
  assert.deepEqual(new Uint8Array(inflateRawSync(packed.subarray(1), { finishFlush: constants.Z_FINISH })), frame);
  assert.deepEqual(await new UnpackStreams().unpack(packed, 1), frame);
});

test("a bomb deflated on its own is refused at the limit, not inflated whole", async () => {
  const bomb = Uint8Array.of(1, ...deflateRawSync(new Uint8Array(64 * MAX_PAYLOAD_BYTES).fill(65), { level: 9 }));
  assert.ok(bomb.length < 64 * 1024, `${bomb.length} bytes`);
  const before = process.memoryUsage().arrayBuffers;
  await assert.rejects(new UnpackStreams().unpack(bomb, 1), (error) => error instanceof PayloadError && /beyond the limit/.test(error.message));
  // 32 MiB inflated whole would show here; cut off per slice of input, it cannot.
  assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024);
  // Just at the limit (a payload and a part's fields) is not a bomb.
  const full = new Uint8Array(MAX_PAYLOAD_BYTES + 1024).fill(65);
  assert.equal((await new UnpackStreams().unpack(await packAlone(full), 1)).length, full.length);
});

test("a frame on its own that is cut short, unfinished, empty or garbage is a PayloadError", async () => {
  const packed = await packAlone(encodePayload(snapshot(2000))[0]);
  const receiver = new UnpackStreams();
  await assert.rejects(receiver.unpack(packed.subarray(0, packed.length - 5), 1), PayloadError);
  await assert.rejects(receiver.unpack(packed.subarray(0, packed.length >> 1), 1), PayloadError);
  const unfinished = deflateRawSync(small(1), { finishFlush: constants.Z_SYNC_FLUSH });
  await assert.rejects(receiver.unpack(Uint8Array.of(1, ...unfinished), 1), PayloadError);
  await assert.rejects(receiver.unpack(Uint8Array.of(1), 1), PayloadError);
  await assert.rejects(receiver.unpack(Uint8Array.of(1, 0xff, 0xff, 0xff, 0xff), 1), PayloadError);
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (bytes) => {
      try {
        const out = await receiver.unpack(Uint8Array.of(1, ...bytes), 1);
        assert.ok(out.length <= MAX_PAYLOAD_BYTES + 1024);
      } catch (error) {
        assert.ok(error instanceof PayloadError, String(error));
      }
    }),
    { numRuns: 500 },
  );
});

test("frames on their own and the epoch's stream mix in any order: the stream goes on untouched", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(fc.integer({ min: 0, max: 50 }).map((i) => ({ i, big: 0 })), fc.integer({ min: 1, max: 9000 }).map((rows) => ({ i: rows, big: rows }))), { minLength: 1, maxLength: 8 }),
      async (sequence) => {
        const sender = new PackStream();
        const receiver = new UnpackStreams();
        const decoder = new PayloadDecoder();
        for (const { i, big } of sequence) {
          const payload: Payload = big ? snapshot(big, i) : { k: "events", events: [{ type: 3, data: { id: i } }] };
          // As the customer's session does: large frames and parts set deflating at once (before
          // the frames ahead of them are packed), the rest packed into the stream in their turn.
          const frames = encodePayload(payload);
          const alone = frames.map((frame) => (frame.length >= ALONE_FROM_BYTES || frames.length > 1 ? packAlone(frame) : null));
          let whole: Payload | null = null;
          for (const [n, frame] of frames.entries()) {
            const packed = alone[n] ? await alone[n] : sender.pack(frame);
            assert.equal(packed[0], alone[n] ? 1 : 3);
            whole = decoder.push(await receiver.unpack(packed, 7));
          }
          assert.deepEqual(whole, payload);
        }
      },
    ),
    {
      numRuns: 12,
      // A snapshot of more than MAX_PAYLOAD_BYTES (in parts, each on its own) between stream frames.
      examples: [[[{ i: 1, big: 0 }, { i: 2, big: 8000 }, { i: 3, big: 0 }, { i: 4, big: 0 }]]],
    },
  );
});

test("a broken frame on its own loses only itself; a broken stream frame still loses its epoch", async () => {
  const sender = new PackStream();
  const receiver = new UnpackStreams();
  assert.deepEqual(await receiver.unpack(sender.pack(small(0)), 3), small(0));
  await assert.rejects(receiver.unpack(Uint8Array.of(1, 1, 2, 3), 3), PayloadError);
  assert.deepEqual(await receiver.unpack(sender.pack(small(1)), 3), small(1)); // the stream goes on
  const frame = encodePayload(snapshot(2000))[0];
  assert.deepEqual(await receiver.unpack(await packAlone(frame), 3), frame);
  assert.deepEqual(await receiver.unpack(sender.pack(small(2)), 3), small(2));
  // A frame on its own opens no stream: the epoch's stream still starts at its first stream frame.
  const next = new PackStream();
  assert.deepEqual(await receiver.unpack(await packAlone(frame), 4), frame);
  assert.deepEqual(await receiver.unpack(next.pack(small(3)), 4), small(3));
  await assert.rejects(receiver.unpack(Uint8Array.of(3, 0xff, 0xfe), 4), PayloadError);
  await assert.rejects(receiver.unpack(next.pack(small(4)), 4), PayloadError);
  assert.deepEqual(await receiver.unpack(await packAlone(frame), 4), frame); // frames on their own still read
});

test("frames under ALONE_FROM_BYTES are not worth deflating on their own: the stream packs them smaller", async () => {
  const sender = new PackStream();
  let stream = 0;
  let alone = 0;
  for (let i = 0; i < 30; i++) {
    stream += sender.pack(small(i)).length;
    alone += (await packAlone(small(i))).length;
  }
  assert.ok(stream * 3 < alone, `${stream} bytes in the stream, ${alone} on their own`);
  assert.ok(encoder.encode(JSON.stringify(snapshot(2000))).length >= ALONE_FROM_BYTES);
});
