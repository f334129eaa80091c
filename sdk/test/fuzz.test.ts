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
import { deflateRaw } from "pako";
import { MAX_PARTS, PackStream, PayloadDecoder, PayloadError, UnpackStreams } from "../src/shared/payload.ts";
import { PolicyError, validatePolicy } from "../src/shared/policy.ts";
import { parseServerMessage, type ServerMessage } from "../src/shared/protocol.ts";
import { SERVER_MESSAGE_SCHEMAS } from "../src/generated/protocol.ts";
import { conforms, type Schema } from "../src/shared/schema.ts";

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
      await expectOnly(PayloadError, () => new UnpackStreams().unpack(bytes, 1));
      await expectOnly(PayloadError, () => new UnpackStreams().unpack(Uint8Array.of(1, ...bytes), 1));
      await expectOnly(PayloadError, () => new UnpackStreams().unpack(Uint8Array.of(2, ...bytes), 1));
      await expectOnly(PayloadError, () => new UnpackStreams().unpack(Uint8Array.of(3, ...bytes), 1));
    }),
    { numRuns: RUNS / 4 },
  );
  // A deflate bomb is cut off at the limit, in either encoding.
  const zeros = new Uint8Array(2 * 1024 * 1024).fill(65);
  await assert.rejects(async () => new UnpackStreams().unpack(Uint8Array.of(1, ...deflateRaw(zeros)), 1), PayloadError);
  await assert.rejects(async () => new UnpackStreams().unpack(new PackStream().pack(zeros), 1), PayloadError);
});

test("unpack: any bytes on their own (flag 1) between an epoch's stream frames never break the stream", async () => {
  const frame = (i: number) => new TextEncoder().encode(JSON.stringify({ k: "events", events: [{ type: 3, id: i }] }));
  await fc.assert(
    fc.asyncProperty(fc.array(fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }), { maxLength: 12 }), async (sequence) => {
      const sender = new PackStream();
      const receiver = new UnpackStreams();
      for (const [i, bytes] of sequence.entries()) {
        if (bytes === null) assert.deepEqual(await receiver.unpack(sender.pack(frame(i)), 1), frame(i));
        else await expectOnly(PayloadError, () => receiver.unpack(Uint8Array.of(1, ...bytes), 1));
      }
    }),
    // 250 sequences, about 1,500 frames of any bytes between the stream's: the bytes alone (flag 1)
    // are fuzzed again by "unpack: any bytes" above and by pack-alone.test.ts (500 runs each);
    // what is new here is their order among the stream frames, which a few hundred sequences cover.
    { numRuns: RUNS / 8 },
  );
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

/** One well-formed message of every type the server sends (checked against the types by tsc). */
const GENUINE: ServerMessage[] = [
  { v: 1, type: "created", session_id: "s1", code: "123456789", resume_token: "t", expires_in: 600, policy: null },
  { v: 1, type: "resumed", state: "sharing", agent: "Ann", code: null, policy: { version: 1 }, recording: false },
  { v: 1, type: "team_policy", policies: [{ version: 1, mask: [".x"] }] },
  { v: 1, type: "agent_joined", agent: "Ann" },
  { v: 1, type: "joined", session_id: "s1" },
  { v: 1, type: "consent", granted: true },
  { v: 1, type: "peer", connected: false },
  { v: 1, type: "error", code: "invalid_code", message: "No such code." },
  { v: 1, type: "ended", reason: "stopped" },
  { v: 1, type: "restarting", reason: "server_shutdown", message: "The server is restarting." },
  { v: 1, type: "link", state: "reconnecting" },
  { v: 1, type: "handshake", data: "abc" },
  { v: 1, type: "watch_request", watcher: "Sam" },
  { v: 1, type: "watcher_left" },
  { v: 1, type: "watch_handshake", data: "abc" },
  { v: 1, type: "watching", session_id: "s1" },
  { v: 1, type: "watcher_joined", watcher: "Sam" },
  { v: 1, type: "record_request", agent: "Ann", key: "k", recording_id: "r1", site: "shop" },
  { v: 1, type: "recording", on: false, reason: "declined" },
];

const kind = (value: unknown) => (value === null ? "null" : Array.isArray(value) ? "array" : typeof value);

/** The kinds of JSON value (as `kind` names them) a schema can accept. */
function kinds(schema: Schema): Set<string> {
  if (schema.anyOf) return new Set(schema.anyOf.flatMap((option) => [...kinds(option)]));
  if (schema.enum) return new Set(schema.enum.map(kind));
  if (schema.type) return new Set([schema.type === "integer" ? "number" : schema.type]);
  return new Set(["null", "array", "object", "string", "number", "boolean"]);
}

test("server messages: every type the server sends is accepted, with fields it may omit left out", () => {
  assert.deepEqual(new Set(GENUINE.map((m) => m.type)), new Set(Object.keys(SERVER_MESSAGE_SCHEMAS)));
  for (const message of GENUINE) {
    assert.deepEqual(parseServerMessage(JSON.stringify(message)), message);
    assert.ok(parseServerMessage(JSON.stringify({ ...message, added_later: [1] })), "unknown fields are ignored, as msgspec does");
  }
  assert.ok(parseServerMessage('{"v":1,"type":"recording","on":true}'));
  assert.equal(parseServerMessage('{"v":2,"type":"watcher_left"}'), null);
  assert.equal(parseServerMessage('{"type":"watcher_left"}'), null);
  assert.equal(parseServerMessage('{"v":1,"type":"toString"}'), null);
  assert.equal(parseServerMessage('{"v":1,"type":"ended","reason":"bored"}'), null);
  assert.equal(parseServerMessage('{"v":1,"type":"created","session_id":"s1","code":"1","resume_token":"t","expires_in":1.5}'), null);
});

test("server messages: a missing field or a field of the wrong kind is refused, never cast", () => {
  const message = fc.constantFrom(...GENUINE);
  fc.assert(
    fc.property(message, fc.nat(), (genuine, at) => {
      const schema = SERVER_MESSAGE_SCHEMAS[genuine.type];
      const required = (schema.required ?? []).filter((name) => name !== "type");
      fc.pre(required.length > 0);
      const { [required[at % required.length]]: _dropped, ...rest } = genuine as unknown as Record<string, unknown>;
      assert.equal(parseServerMessage(JSON.stringify(rest)), null);
    }),
    { numRuns: RUNS / 4 },
  );
  fc.assert(
    fc.property(message, fc.nat(), fc.jsonValue(), (genuine, at, replacement) => {
      const fields = Object.keys(genuine).filter((name) => name !== "v" && name !== "type");
      fc.pre(fields.length > 0);
      const name = fields[at % fields.length];
      fc.pre(!kinds(SERVER_MESSAGE_SCHEMAS[genuine.type].properties?.[name] ?? {}).has(kind(replacement)));
      assert.equal(parseServerMessage(JSON.stringify({ ...genuine, [name]: replacement })), null, `${genuine.type}.${name} = ${JSON.stringify(replacement)}`);
    }),
    { numRuns: RUNS },
  );
});

test("server messages: whatever is accepted conforms to its type's schema", () => {
  const field = fc.oneof(fc.jsonValue(), fc.string(), fc.boolean(), fc.constant(null));
  const shaped = fc.record({
    v: fc.oneof(fc.constant(1), fc.jsonValue()),
    type: fc.oneof(fc.constantFrom(...Object.keys(SERVER_MESSAGE_SCHEMAS)), fc.string()),
  }).chain((head) => fc.dictionary(fc.constantFrom("session_id", "code", "agent", "state", "reason", "on", "granted", "data", "policies", "policy", "expires_in", "resume_token", "recording", "watcher", "key", "site", "recording_id", "connected", "message"), field).map((rest) => ({ ...rest, ...head })));
  fc.assert(
    fc.property(fc.oneof(shaped, fc.jsonValue()), (value) => {
      const message = parseServerMessage(JSON.stringify(value));
      if (message === null) return;
      assert.equal(message.v, 1);
      assert.ok(conforms(SERVER_MESSAGE_SCHEMAS[message.type], message));
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
