import assert from "node:assert/strict";
import { test } from "node:test";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  ChannelError, ContentReceiver, ContentSender, KIND_RECORDING_KEY, RECORDING_KEY_FRAME_BYTES, derivePairwiseKeys,
} from "../src/shared/e2e/channel.ts";
import { toBase64Url } from "../src/shared/e2e/encoding.ts";
import {
  RecordingError, RecordingOpener, newKeyFile, openKeyFile, parseContainer, recordingKeyId,
} from "../src/shared/e2e/recording.ts";

const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array | null) => (b ? new TextDecoder().decode(b) : null);
const FAST = 100_000; // iterations: the lowest a key file may use (tests only; the console uses 600,000)

async function recorded(sessionId = "s1", epoch = 1) {
  const secret = x25519.utils.randomSecretKey();
  const publicKey = x25519.getPublicKey(secret);
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke.slice(), sessionId);
  const agent = await derivePairwiseKeys(ke.slice(), sessionId);
  const sender = await ContentSender.create(sessionId, epoch, [customer.customerToAgent], undefined, publicKey);
  return { secret, publicKey, sender, agent };
}

test("while recording, each content key is also wrapped for the recording key; the agent ignores it", async () => {
  const { sender, agent } = await recorded();
  assert.equal(sender.epochKeyFrames.length, 2);
  const wrapped = sender.epochKeyFrames[1];
  assert.equal(wrapped[0], KIND_RECORDING_KEY);
  assert.equal(wrapped.length, RECORDING_KEY_FRAME_BYTES);
  const receiver = new ContentReceiver("s1", agent.customerToAgent);
  for (const frame of sender.epochKeyFrames) assert.equal(await receiver.open(frame), null);
  assert.equal(read(await receiver.open(await sender.seal(text("page")))), "page");
});

test("the recording opens with the private key only, in order", async () => {
  const { secret, sender } = await recorded();
  const frames = [...sender.epochKeyFrames, ...(await Promise.all(["a", "b", "c"].map((s) => sender.seal(text(s)))))];
  const opener = new RecordingOpener("s1", secret);
  const out = [];
  for (const frame of frames) out.push(read(await opener.open(frame)));
  assert.deepEqual(out.filter(Boolean), ["a", "b", "c"]);

  const stranger = new RecordingOpener("s1", x25519.utils.randomSecretKey());
  await assert.rejects(async () => {
    for (const frame of frames) await stranger.open(frame);
  }, ChannelError);
  const otherSession = new RecordingOpener("s2", secret); // the key frame is bound to its session
  await assert.rejects(async () => {
    for (const frame of frames) await otherSession.open(frame);
  }, ChannelError);
});

test("a server that drops, reorders, replays or alters recorded frames is caught", async () => {
  const { secret, sender } = await recorded();
  const keys = sender.epochKeyFrames;
  const content = await Promise.all(["a", "b", "c"].map((s) => sender.seal(text(s))));
  const altered = content[1].slice();
  altered[altered.length - 1] ^= 1;
  const cases: Uint8Array[][] = [
    [...keys, content[0], content[2]], // dropped
    [...keys, content[1], content[0]], // reordered
    [...keys, content[0], content[0]], // replayed
    [...keys, content[0], altered], // altered
  ];
  for (const frames of cases) {
    const opener = new RecordingOpener("s1", secret);
    await assert.rejects(async () => {
      for (const frame of frames) await opener.open(frame);
    }, ChannelError);
  }
});

test("content of a page shared before the customer allowed recording is skipped, not opened", async () => {
  const { secret, publicKey, agent } = await recorded();
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke, "s1");
  const before = await ContentSender.create("s1", 1, [customer.customerToAgent]);
  const after = await ContentSender.create("s1", 2, [customer.customerToAgent], undefined, publicKey);
  const opener = new RecordingOpener("s1", secret);
  assert.equal(await opener.open(await before.seal(text("unrecorded"))), null);
  assert.equal(opener.skipped, 1);
  for (const frame of after.epochKeyFrames) await opener.open(frame);
  assert.equal(read(await opener.open(await after.seal(text("recorded")))), "recorded");
  assert.ok(agent);
});

test("a key file opens with its passphrase only", async () => {
  const file = await newKeyFile("default", "correct horse battery", FAST);
  assert.equal(file.key_id, await recordingKeyId(Uint8Array.from(Buffer.from(file.public_key, "base64url"))));
  assert.ok(!JSON.stringify(file).includes("correct horse"));
  const opened = await openKeyFile(JSON.stringify(file), "correct horse battery");
  assert.equal(opened.keyId, file.key_id);
  assert.equal(toBase64Url(x25519.getPublicKey(opened.privateKey)), file.public_key);
  await assert.rejects(openKeyFile(JSON.stringify(file), "wrong horse battery"), RecordingError);
  await assert.rejects(openKeyFile("{not json", "x"), RecordingError);
  await assert.rejects(openKeyFile(JSON.stringify({ ...file, kdf: { ...file.kdf, iterations: 10 } }), "correct horse battery"), RecordingError);
  const swapped = { ...file, public_key: toBase64Url(x25519.getPublicKey(x25519.utils.randomSecretKey())) };
  await assert.rejects(openKeyFile(JSON.stringify(swapped), "correct horse battery"), RecordingError);
  await assert.rejects(newKeyFile("default", "short"), RecordingError);
});

test("a container parses and refuses truncation", () => {
  const header = new TextEncoder().encode(JSON.stringify({ format: 1, session_id: "s1", key_id: "k" }));
  const frame = Uint8Array.of(1, 2, 3);
  const u32 = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; };
  const bytes = new Uint8Array([...new TextEncoder().encode("TNDMREC1"), ...u32(header.length), ...header, ...u32(3), ...frame]);
  const parsed = parseContainer(bytes);
  assert.equal(parsed.header.session_id, "s1");
  assert.deepEqual(parsed.frames, [frame]);
  assert.throws(() => parseContainer(bytes.subarray(0, bytes.length - 1)), RecordingError);
  assert.throws(() => parseContainer(text("TNDMREC2xxxx")), RecordingError);
});
