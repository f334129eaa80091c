// One compression stream per epoch (issue 17): each payload is deflated into the epoch's stream
// and flushed, so later payloads cost only what is new in them; the receiver inflates per epoch,
// refuses bombs and garbage with PayloadError only, and still reads the older encodings.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { MAX_PAYLOAD_BYTES, PackStream, PayloadError, UnpackStreams, encodePayload, pack } from "../src/shared/payload.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function event(i: number): Uint8Array {
  const [frame] = encodePayload({
    k: "events",
    events: [{ type: 3, timestamp: 1700000000000 + i * 37, data: { source: 0, adds: [{ parentId: 12, nextId: null, node: { type: 2, tagName: "li", attributes: { class: "cart-item" }, childNodes: [], id: 100 + i } }], removes: [], texts: [], attributes: [] } }],
  });
  return frame;
}

test("every payload of an epoch round-trips in order, and repeats cost a fraction", async () => {
  const sender = new PackStream();
  const receiver = new UnpackStreams();
  let first = 0;
  let later = 0;
  for (let i = 0; i < 50; i++) {
    const frame = event(i);
    const packed = sender.pack(frame);
    assert.equal(packed[0], 2);
    if (i === 0) first = packed.length;
    else later += packed.length;
    assert.deepEqual(await receiver.unpack(packed, 7), frame);
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

test("a bomb in the stream is cut off at the limit", async () => {
  const sender = new PackStream(9);
  const receiver = new UnpackStreams();
  const bomb = sender.pack(new Uint8Array(MAX_PAYLOAD_BYTES * 4).fill(65));
  assert.ok(bomb.length < 20_000);
  await assert.rejects(receiver.unpack(bomb, 1), PayloadError);
  await assert.rejects(receiver.unpack(sender.pack(event(1)), 1), PayloadError); // the epoch is lost
  assert.deepEqual(await receiver.unpack(new PackStream().pack(event(1)), 2), event(1)); // the next is not
});

test("older encodings still unpack (recordings made by earlier versions)", async () => {
  const receiver = new UnpackStreams();
  const large = encoder.encode("abc".repeat(5000));
  assert.deepEqual(await receiver.unpack(await pack(large), 1), large);
  assert.deepEqual(await receiver.unpack(await pack(encoder.encode("hi")), 1), encoder.encode("hi"));
});

test("any bytes in a streamed frame raise PayloadError only", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 4 }), async (frames) => {
      const receiver = new UnpackStreams();
      for (const bytes of frames) {
        try {
          const out = await receiver.unpack(Uint8Array.of(2, ...bytes), 1);
          assert.ok(out instanceof Uint8Array);
          decoder.decode(out);
        } catch (error) {
          assert.ok(error instanceof PayloadError, String(error));
        }
      }
    }),
    { numRuns: 2000 },
  );
});
