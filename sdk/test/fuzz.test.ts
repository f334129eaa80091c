/**
 * Fuzzing the parsers the browsers feed with what arrives from the network (property-based, with
 * fast-check): whatever the bytes, each one returns or throws its own documented error, never
 * anything else, and memory stays bounded.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  ChannelError, ContentReceiver, ContentSender, KIND_WATCHER_KEY, derivePairwiseKeys, importChainKey,
} from "../src/shared/e2e/channel.ts";
import {
  RecordingError, RecordingOpener, checkPin, openKeyFile, openRecording, parseContainer, recordingKeyId, validatePins,
} from "../src/shared/e2e/recording.ts";
import { recordingCommand } from "../src/share/recording.ts";
import { toBase64Url } from "../src/shared/e2e/encoding.ts";
import { MAX_PARTS, PayloadDecoder, PayloadError, pack, unpack } from "../src/shared/payload.ts";
import { PolicyError, validatePolicy } from "../src/shared/policy.ts";
import { parseServerMessage } from "../src/shared/protocol.ts";

const RUNS = Number(process.env.TANDEM_FUZZ_RUNS ?? 2000);

async function expectOnly<T>(kind: new (...args: never[]) => Error, work: () => T | Promise<T>): Promise<void> {
  try {
    await work();
  } catch (error) {
    assert.ok(error instanceof kind, `unexpected ${(error as Error)?.constructor?.name}: ${String(error)}`);
  }
}

async function expectOneOf(kinds: (new (...args: never[]) => Error)[], work: () => unknown): Promise<void> {
  try {
    await work();
  } catch (error) {
    assert.ok(kinds.some((kind) => error instanceof kind), `unexpected ${(error as Error)?.constructor?.name}: ${String(error)}`);
  }
}

const part = fc.record({
  k: fc.constantFrom("part", "events", "paused", "control", "x"),
  id: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.double(), fc.string()),
  i: fc.oneof(fc.integer({ min: -2, max: 70 }), fc.constant(1e12)),
  n: fc.oneof(fc.integer({ min: -2, max: 70 }), fc.constant(2 ** 40)),
  d: fc.oneof(fc.string(), fc.constant('{"k":"events","events":[]}'), fc.integer()),
  events: fc.anything(),
  state: fc.constantFrom("granted", "refused", "revoked", "other"),
});

test("payload decoder: any bytes and any part sequence", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.uint8Array({ maxLength: 200 }), part.map((p) => new TextEncoder().encode(JSON.stringify(p)))), { maxLength: 20 }), async (frames) => {
      const decoder = new PayloadDecoder();
      for (const frame of frames) await expectOnly(PayloadError, () => decoder.push(frame));
      const held = (decoder as unknown as { parts: unknown[] }).parts.length;
      assert.ok(held <= MAX_PARTS);
    }),
    { numRuns: RUNS },
  );
});

test("unpack: any bytes, including broken and oversized deflate streams", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
      await expectOnly(PayloadError, () => unpack(bytes));
      await expectOnly(PayloadError, () => unpack(Uint8Array.of(1, ...bytes)));
    }),
    { numRuns: RUNS / 4 },
  );
  // A deflate bomb is cut off at the limit.
  const bomb = await pack(new Uint8Array(2 * 1024 * 1024).fill(65));
  await assert.rejects(unpack(bomb), PayloadError);
});

test("content receiver: forged, truncated and relabelled frames only raise ChannelError", async () => {
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke.slice(), "s1");
  const agent = await derivePairwiseKeys(ke.slice(), "s1");
  const sender = await ContentSender.create("s1", 1, [customer.customerToAgent]);
  const genuine = [...sender.epochKeyFrames, await sender.seal(new TextEncoder().encode("hello"))];
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(...genuine), fc.tuple(fc.constantFrom(...genuine), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([frame, at, value]) => {
        const copy = frame.slice();
        copy[at % copy.length] = value;
        return copy;
      })), { maxLength: 8 }),
      fc.boolean(),
      async (frames, asWatcher) => {
        const receiver = asWatcher ? new ContentReceiver("s1", agent.customerToAgent, KIND_WATCHER_KEY) : new ContentReceiver("s1", agent.customerToAgent);
        for (const frame of frames) await expectOnly(ChannelError, () => receiver.open(frame));
      },
    ),
    { numRuns: RUNS / 4 },
  );
});

test("server messages and policies: any text, any JSON", async () => {
  fc.assert(
    fc.property(fc.string(), fc.json(), (text, json) => {
      parseServerMessage(text);
      parseServerMessage(json);
    }),
    { numRuns: RUNS },
  );
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.jsonValue(), fc.record({ version: fc.constant(1), mask: fc.anything(), pages: fc.anything(), detectors: fc.anything(), media: fc.anything(), url: fc.anything() })), async (value) => {
      await expectOnly(PolicyError, () => validatePolicy(value));
    }),
    { numRuns: RUNS },
  );
});

test("recordings: forged or mutated containers, frames and key files only raise their own errors", async () => {
  const secret = x25519.utils.randomSecretKey();
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke, "s1");
  const chainKey = await importChainKey(crypto.getRandomValues(new Uint8Array(32)), "sign");
  const link = { publicKey: x25519.getPublicKey(secret), previousEpoch: 0, previousCount: 0, chainKey };
  const sender = await ContentSender.create("s1", 1, [customer.customerToAgent], undefined, link);
  const genuine = [...sender.epochKeyFrames, await sender.seal(new TextEncoder().encode("hello"))];
  const mutated = fc.tuple(fc.constantFrom(...genuine), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([frame, at, value]) => {
    const copy = frame.slice();
    copy[at % copy.length] = value;
    return copy;
  });
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(...genuine), mutated), { maxLength: 8 }), async (frames) => {
      const opener = new RecordingOpener("s1", secret);
      for (const frame of frames) await expectOneOf([ChannelError, RecordingError], () => opener.open(frame));
      await expectOnly(ChannelError, () => opener.finish());
    }),
    { numRuns: RUNS / 4 },
  );
  // Whole containers: any header JSON, any sequence of genuine, mutated and random frames.
  const key = { keyId: await recordingKeyId(link.publicKey), publicKey: toBase64Url(link.publicKey), privateKey: secret };
  const header = fc.record({
    session_id: fc.constantFrom("s1", "s2"), key_id: fc.constantFrom(key.keyId, "other"), recording_id: fc.string(),
    agent: fc.oneof(fc.string(), fc.integer()), site_id: fc.string(),
  });
  const u32 = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; };
  await fc.assert(
    fc.asyncProperty(header, fc.array(fc.oneof(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(...genuine), mutated), { maxLength: 8 }), async (head, frames) => {
      const json = new TextEncoder().encode(JSON.stringify(head));
      const parts = [new TextEncoder().encode("TNDMREC1"), u32(json.length), json, ...frames.flatMap((f) => [u32(f.length), f])];
      const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (bytes.set(p, at), at + p.length), 0);
      await expectOneOf([ChannelError, RecordingError], () => openRecording(bytes, key));
    }),
    { numRuns: Math.ceil(RUNS / 8) },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, magic) => {
      const data = magic ? new Uint8Array([...new TextEncoder().encode("TNDMREC1"), ...bytes]) : bytes;
      try {
        parseContainer(data);
      } catch (error) {
        assert.ok(error instanceof RecordingError, String(error));
      }
    }),
    { numRuns: RUNS },
  );
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string(), fc.json(), fc.record({ tandem_recording_key: fc.constant(1), public_key: fc.string(), sealed: fc.string(), nonce: fc.string(), kdf: fc.record({ name: fc.constant("PBKDF2-SHA256"), iterations: fc.constant(100_000), salt: fc.string() }) }).map((v) => JSON.stringify(v))), async (text) => {
      await expectOnly(RecordingError, () => openKeyFile(text, "some passphrase"));
    }),
    { numRuns: 40 }, // each well-formed one runs PBKDF2
  );
});

test("recording commands and pins: any JSON from the agent or the page", async () => {
  fc.assert(
    fc.property(fc.oneof(fc.anything(), fc.record({ k: fc.constantFrom("record_request", "record_stop"), agent: fc.anything(), name: fc.anything() })), (value) => {
      const command = recordingCommand(value);
      if (command?.k === "record_request") assert.ok(typeof command.ask.agent === "string" && command.ask.agent.length > 0);
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.oneof(fc.anything(), fc.array(fc.string({ maxLength: 50 }), { maxLength: 10 })), (value) => {
      try {
        validatePins(value);
      } catch (error) {
        assert.ok(error instanceof RecordingError, String(error));
      }
    }),
    { numRuns: RUNS },
  );
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 60 }), fc.array(fc.string({ maxLength: 50 }), { maxLength: 3 }), async (key, pins) => {
      const { pinned } = await checkPin(key, pins);
      assert.equal(typeof pinned, "boolean");
    }),
    { numRuns: Math.ceil(RUNS / 4) },
  );
});
