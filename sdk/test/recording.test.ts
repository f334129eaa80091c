import assert from "node:assert/strict";
import { test } from "node:test";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  ChannelError, ContentReceiver, ContentSender, KIND_RECORDING_KEY, KIND_RECORDING_LINK, RECORDING_KEY_FRAME_BYTES,
  RECORDING_LINK_FRAME_BYTES, derivePairwiseKeys, importChainKey, u64,
} from "../src/shared/e2e/channel.ts";
import { toBase64Url } from "../src/shared/e2e/encoding.ts";
import {
  BROKEN, RecordingError, RecordingOpener, checkPin, newKeyFile, openKeyFile, openRecording, parseContainer,
  recordingKeyId, validatePins, type RecordingKey,
} from "../src/shared/e2e/recording.ts";
import { PackStream, PayloadDecoder, encodePayload, type Payload } from "../src/shared/payload.ts";
import { PolicyError, validatePolicy } from "../src/shared/policy.ts";
import { RecordingAsk, recordingCommand } from "../src/share/recording.ts";

const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array | null) => (b ? new TextDecoder().decode(b) : null);
const FAST = 100_000; // iterations: the lowest a key file may use (tests only; the console uses 600,000)
const SESSION = "s1";
const CHAIN = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
const chainKey = (chain = CHAIN) => importChainKey(Uint8Array.from(Buffer.from(chain, "base64url")), "sign");

async function recorded(sessionId = SESSION, epoch = 1) {
  const secret = x25519.utils.randomSecretKey();
  const publicKey = x25519.getPublicKey(secret);
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke.slice(), sessionId);
  const agent = await derivePairwiseKeys(ke.slice(), sessionId);
  const sender = await ContentSender.create(
    sessionId, epoch, [customer.customerToAgent], undefined,
    { publicKey, previousEpoch: 0, previousCount: 0, chainKey: await chainKey() },
  );
  return { secret, publicKey, sender, agent, customer };
}

test("while recording, each content key is also wrapped and linked for the recording key; the agent ignores it", async () => {
  const { sender, agent } = await recorded();
  assert.equal(sender.epochKeyFrames.length, 2);
  assert.ok(sender.recorded);
  const wrapped = sender.epochKeyFrames[1];
  assert.equal(wrapped[0], KIND_RECORDING_LINK);
  assert.equal(wrapped.length, RECORDING_LINK_FRAME_BYTES);
  const receiver = new ContentReceiver(SESSION, agent.customerToAgent);
  for (const frame of sender.epochKeyFrames) assert.equal(await receiver.open(frame), null);
  assert.equal(read(await receiver.open(await sender.seal(text("page")))), "page");
});

test("a recorded epoch's frames open with the private key only, in order", async () => {
  const { secret, sender } = await recorded();
  const frames = [...sender.epochKeyFrames, ...(await Promise.all(["a", "b", "c"].map((s) => sender.seal(text(s)))))];
  const opener = new RecordingOpener(SESSION, secret);
  const out = [];
  for (const frame of frames) out.push(read(await opener.open(frame)));
  assert.deepEqual(out.filter(Boolean), ["a", "b", "c"]);

  const stranger = new RecordingOpener(SESSION, x25519.utils.randomSecretKey());
  await assert.rejects(async () => {
    for (const frame of frames) await stranger.open(frame);
  }, ChannelError);
  const otherSession = new RecordingOpener("s2", secret); // the key frame is bound to its session
  await assert.rejects(async () => {
    for (const frame of frames) await otherSession.open(frame);
  }, ChannelError);
});

test("a server that drops, reorders, replays or alters frames inside an epoch is caught", async () => {
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
    const opener = new RecordingOpener(SESSION, secret);
    await assert.rejects(async () => {
      for (const frame of frames) await opener.open(frame);
    }, ChannelError);
  }
});

test("the link's numbers are bound: a server cannot rewrite which epoch comes before", async () => {
  const { secret, sender } = await recorded(SESSION, 3);
  const link = sender.epochKeyFrames[1].slice();
  link.set(u64(2), 9); // claim epoch 2 came before (the customer said: none)
  const opener = new RecordingOpener(SESSION, secret);
  await assert.rejects(opener.open(link), ChannelError);
});

// Whole recordings, built here the way the customer's SDK sends them (docs/recordings.md).

interface Built {
  key: RecordingKey;
  header: Record<string, unknown>;
  /** The frames of each epoch, in order: [unrecorded epoch 1, recorded epochs…]. */
  epochs: Uint8Array[][];
}

const START = {
  k: "recording_start", recording_id: "r1", session_id: SESSION, agent: "alice", site: "demo", origin: "https://shop.example",
  at: 1_700_000_000_000, chain: CHAIN,
} as const;
const END = { k: "recording_end", recording_id: "r1", reason: "stopped_by_customer", at: 1_700_000_060_000 } as const;
const events = (name: string): Payload => ({ k: "events", events: [{ type: 3, data: { name } }] });

/** Each epoch's payloads in one compression stream, as the SDK packs them. */
async function sealAll(sender: ContentSender, payloads: Payload[]): Promise<Uint8Array[]> {
  const out = [];
  const stream = new PackStream();
  for (const payload of payloads) {
    for (const frame of encodePayload(payload)) out.push(await sender.seal(stream.pack(frame)));
  }
  return out;
}

/** An unrecorded page (epoch 1), then recorded epochs 2, 3, 5 (a private page or a supervisor
 * makes epochs the recording does not number consecutively), start to end. */
async function build(
  pages: Payload[][] = [[START, events("shop")], [events("cart")], [events("checkout"), END]],
  secret = x25519.utils.randomSecretKey(),
  chain = CHAIN,
): Promise<Built> {
  const publicKey = x25519.getPublicKey(secret);
  const { customerToAgent } = await derivePairwiseKeys(crypto.getRandomValues(new Uint8Array(16)), SESSION);
  const before = await ContentSender.create(SESSION, 1, [customerToAgent]);
  const epochs: Uint8Array[][] = [[...before.epochKeyFrames, ...(await sealAll(before, [events("before consent")]))]];
  let previousEpoch = 0;
  let previousCount = 0;
  const numbers = [2, 3, 5, 6, 7];
  for (const [i, payloads] of pages.entries()) {
    const epoch = numbers[i];
    const link = { publicKey, previousEpoch, previousCount, chainKey: await chainKey(chain) };
    const sender = await ContentSender.create(SESSION, epoch, [customerToAgent], undefined, link);
    const content = await sealAll(sender, payloads);
    epochs.push([...sender.epochKeyFrames, ...content]);
    previousEpoch = epoch;
    previousCount = content.length;
  }
  const keyId = await recordingKeyId(publicKey);
  const header = {
    format: 1, recording_id: "r1", session_id: SESSION, org_id: "default", site_id: "demo", agent: "alice",
    key_id: keyId, started_at: 1_700_000_000, ended_at: 1_700_000_060, end_reason: "stopped_by_customer",
  };
  return { key: { keyId, publicKey: toBase64Url(publicKey), privateKey: secret }, header, epochs };
}

function container(header: Record<string, unknown>, frames: Uint8Array[]): Uint8Array {
  const u32 = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; };
  const head = text(JSON.stringify(header));
  const parts = [text("TNDMREC1"), u32(head.length), head, ...frames.flatMap((f) => [u32(f.length), f])];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function refusal(bytes: Uint8Array, key: RecordingKey): Promise<string> {
  try {
    await openRecording(bytes, key);
  } catch (error) {
    assert.ok(error instanceof ChannelError || error instanceof RecordingError, String(error));
    return (error as Error).message;
  }
  assert.fail("the edited recording was played");
}

test("an honest recording plays whole: every event in order, the unrecorded page skipped, the start and end bound", async () => {
  const { key, header, epochs } = await build();
  const opened = await openRecording(container(header, epochs.flat()), key);
  assert.deepEqual(opened.events.map((e) => (e as { data: { name: string } }).data.name), ["shop", "cart", "checkout"]);
  assert.equal(opened.skipped, 1);
  assert.deepEqual(opened.start, START);
  assert.deepEqual(opened.end, END);
});

test("a recording without its first epoch is refused: its start is missing", async () => {
  const { key, header, epochs } = await build();
  assert.equal(await refusal(container(header, [...epochs[0], ...epochs.slice(2).flat()]), key), BROKEN.firstMissing);
});

test("a recording without a middle epoch is refused, naming where", async () => {
  const { key, header, epochs } = await build();
  const message = await refusal(container(header, [...epochs[0], ...epochs[1], ...epochs[3]]), key);
  assert.equal(message, BROKEN.middleMissing(2, 5));
});

test("a recording with frames cut from the end of a middle epoch is refused", async () => {
  const { key, header, epochs } = await build([[START, events("shop"), events("more"), events("most")], [events("cart"), END]]);
  const cut = epochs[1].slice(0, -2); // the last two content frames of epoch 2
  const message = await refusal(container(header, [...epochs[0], ...cut, ...epochs[2]]), key);
  assert.equal(message, BROKEN.tailFrames(2, 2, 4));
});

test("a truncated recording is refused: its tail, or only its end marker, is missing", async () => {
  const { key, header, epochs } = await build();
  assert.equal(await refusal(container(header, epochs.slice(0, 3).flat()), key), BROKEN.truncated);
  assert.equal(await refusal(container(header, epochs.flat().slice(0, -1)), key), BROKEN.truncated);
  assert.equal(await refusal(container(header, [...epochs[0]]), key), BROKEN.firstMissing); // nothing recorded at all
});

test("an interrupted recording opens `partial` up to where it stopped, without an end; nothing else is relaxed", async () => {
  const { key, header, epochs } = await build();
  const interrupted = { ...header, end_reason: "interrupted" };
  const cut = container(interrupted, epochs.slice(0, 3).flat()); // the server crashed during epoch 5
  assert.equal(await refusal(cut, key), BROKEN.truncated); // played whole, it is refused as before
  const opened = await openRecording(cut, key, { partial: true });
  assert.deepEqual(opened.events.map((e) => (e as { data: { name: string } }).data.name), ["shop", "cart"]);
  assert.equal(opened.end, null);
  assert.deepEqual(opened.start, START);
  // A whole recording opened `partial` still has its end.
  assert.deepEqual((await openRecording(container(header, epochs.flat()), key, { partial: true })).end, END);
  // Partial is no licence to cut the start or a middle part, to relabel, or to forge.
  const partial = async (bytes: Uint8Array) => {
    try {
      await openRecording(bytes, key, { partial: true });
    } catch (error) {
      return (error as Error).message;
    }
    return "played";
  };
  assert.equal(await partial(container(interrupted, [...epochs[0], ...epochs.slice(2).flat()])), BROKEN.firstMissing);
  assert.equal(await partial(container(interrupted, [...epochs[0], ...epochs[1], ...epochs[3]])), BROKEN.middleMissing(2, 5));
  assert.equal(await partial(container({ ...interrupted, agent: "mallory" }, epochs.slice(0, 3).flat())), BROKEN.relabelled("agent", "mallory", "alice"));
  const fake = await forged(key.privateKey, 3, 2, 2, [events("made up")]);
  assert.equal(await partial(container(interrupted, [...epochs[0], ...epochs[1], ...fake])), BROKEN.forged(3));
  assert.equal(await partial(container(interrupted, [...epochs[0]])), BROKEN.firstMissing);
});

test("a relabelled header is refused: recording id, agent, site or session", async () => {
  const { key, header, epochs } = await build();
  const frames = epochs.flat();
  for (const [field, value, bound] of [["recording_id", "r2", "r1"], ["agent", "mallory", "alice"], ["site_id", "other-shop", "demo"]]) {
    assert.equal(await refusal(container({ ...header, [field]: value }, frames), key), BROKEN.relabelled(field, value, bound));
  }
  assert.equal(await refusal(container({ ...header, session_id: "s9" }, frames), key), BROKEN.firstKey("s9"));
});

test("nothing recorded may follow the end, and two recordings cannot be spliced into one", async () => {
  const { key, header, epochs } = await build([[START, events("shop")], [events("cart"), END], [events("after the end")]]);
  assert.equal(await refusal(container(header, epochs.flat()), key), BROKEN.afterEnd);
  const spliced = await build([[START, events("shop")], [START, events("again")], [END]]);
  assert.equal(await refusal(container(spliced.header, spliced.epochs.flat()), spliced.key), BROKEN.secondStart);
});

/** An epoch a server makes up under the (public) recording key: right numbers, its own chain key. */
async function forged(secret: Uint8Array, epoch: number, previousEpoch: number, previousCount: number, payloads: Payload[]) {
  const { customerToAgent } = await derivePairwiseKeys(crypto.getRandomValues(new Uint8Array(16)), SESSION);
  const otherChain = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  const link = { publicKey: x25519.getPublicKey(secret), previousEpoch, previousCount, chainKey: await chainKey(otherChain) };
  const sender = await ContentSender.create(SESSION, epoch, [customerToAgent], undefined, link);
  return [...sender.epochKeyFrames, ...(await sealAll(sender, payloads))];
}

test("an epoch the server made up in place of one it cut is refused: its link was not made by the customer's browser", async () => {
  const { key, header, epochs } = await build();
  const cartFrames = epochs[2].length - 2; // without its 0x02 and 0x06 frames
  const fake = await forged(key.privateKey, 3, 2, 2, Array.from({ length: cartFrames }, () => events("made up")));
  assert.equal(await refusal(container(header, [...epochs[0], ...epochs[1], ...fake, ...epochs[3]]), key), BROKEN.forged(3));
  // Its tail cut and an end of its own making put in its place:
  const tail = await forged(key.privateKey, 4, 3, 1, [END]);
  assert.equal(await refusal(container(header, [...epochs.slice(0, 3).flat(), ...tail]), key), BROKEN.forged(4));
});

test("a recording made up whole under the public key still opens: playback proves it whole, not who made it", async () => {
  const secret = x25519.utils.randomSecretKey();
  const other = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  const { key, header, epochs } = await build([[{ ...START, chain: other }, events("made up")], [END]], secret, other);
  assert.equal((await openRecording(container(header, epochs.flat()), key)).events.length, 1);
});

test("a recording made by Tandem 0.2 (unchained 0x05 key frames) is refused as made by an older version", async () => {
  const { key, header, epochs } = await build();
  const legacy = new Uint8Array(RECORDING_KEY_FRAME_BYTES);
  legacy[0] = KIND_RECORDING_KEY;
  legacy.set(u64(2), 1);
  const message = await refusal(container(header, [legacy, ...epochs.flat()]), key);
  assert.equal(message, BROKEN.legacy);
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
  const bytes = container({ format: 1, session_id: "s1", key_id: "k" }, [Uint8Array.of(1, 2, 3)]);
  const parsed = parseContainer(bytes);
  assert.equal(parsed.header.session_id, "s1");
  assert.deepEqual(parsed.frames, [Uint8Array.of(1, 2, 3)]);
  assert.throws(() => parseContainer(bytes.subarray(0, bytes.length - 1)), RecordingError);
  assert.throws(() => parseContainer(text("TNDMREC2xxxx")), RecordingError);
});

// Pins: only the site's own page says which recording key may be used.

test("a pin is a key id or a public key; the key the server names must match one", async () => {
  const publicKey = x25519.getPublicKey(x25519.utils.randomSecretKey());
  const key = toBase64Url(publicKey);
  const keyId = await recordingKeyId(publicKey);
  assert.deepEqual(await checkPin(key, [keyId]), { keyId, pinned: true });
  assert.deepEqual(await checkPin(key, [key]), { keyId, pinned: true });
  const other = await recordingKeyId(x25519.getPublicKey(x25519.utils.randomSecretKey()));
  assert.deepEqual(await checkPin(key, [other]), { keyId, pinned: false });
  assert.deepEqual(await checkPin(key, []), { keyId, pinned: false });
  assert.deepEqual(await checkPin("not a key", [keyId]), { keyId: null, pinned: false });
  assert.deepEqual(await checkPin(toBase64Url(new Uint8Array(31)), [keyId]), { keyId: null, pinned: false });
  assert.deepEqual(validatePins([keyId, key]), [keyId, key]);
  assert.deepEqual(validatePins(undefined), []);
  for (const bad of ["x", [keyId + "!"], [1], Array(9).fill(keyId), [keyId.slice(1)]]) {
    assert.throws(() => validatePins(bad), RecordingError, JSON.stringify(bad));
  }
});

test("a policy from the server cannot carry a pin: validatePolicy refuses recording_keys", () => {
  assert.throws(() => validatePolicy({ version: 1, recording_keys: ["AAAAAAAAAAAAAAAAAAAAAA"] }), PolicyError);
});

test("the server's and the agent's requests pair in either order within the window; the server's alone is refused", async () => {
  const ask = { agent: "Alice", key: "k", keyId: "id", recordingId: "r1", site: "demo" };
  const agent = { agent: "alice", name: "Alice" };
  for (const order of ["server first", "agent first"]) {
    const paired: unknown[] = [];
    const pairing = new RecordingAsk((s, a) => paired.push([s, a]), () => assert.fail("refused"), 200);
    if (order === "server first") {
      pairing.fromServer(ask);
      pairing.fromAgent(agent);
    } else {
      pairing.fromAgent(agent);
      pairing.fromServer(ask);
    }
    assert.deepEqual(paired, [[ask, agent]], order);
    pairing.reset();
  }
  const refused = await new Promise((resolve) => {
    const pairing = new RecordingAsk(() => assert.fail("paired without the agent"), resolve, 20);
    pairing.fromServer(ask);
  });
  assert.deepEqual(refused, ask);
  await new Promise<void>((resolve, reject) => {
    const pairing = new RecordingAsk(() => reject(new Error("paired after the window")), () => reject(new Error("refused")), 20);
    pairing.fromAgent(agent);
    setTimeout(() => {
      pairing.fromServer(ask); // the agent's request expired: the server's now waits alone
      pairing.reset();
      resolve();
    }, 60);
  });
});

test("the agent's recording commands are read strictly", () => {
  assert.deepEqual(recordingCommand({ k: "record_request", agent: "alice", name: "Alice" }), { k: "record_request", ask: { agent: "alice", name: "Alice" } });
  assert.deepEqual(recordingCommand({ k: "record_stop" }), { k: "record_stop" });
  for (const other of [null, "x", { k: "click" }, { k: "record_request" }, { k: "record_request", agent: "", name: "A" }, { k: "record_request", agent: "a".repeat(201), name: "A" }]) {
    assert.equal(recordingCommand(other), null, JSON.stringify(other));
  }
});

test("recording payloads are validated like every other payload", () => {
  const decoder = new PayloadDecoder();
  for (const good of [START, END, { k: "recording", on: true, key_id: "AbCdEfGhIjKlMnOpQrSt_-" }, { k: "recording", on: false, key_id: null, reason: "not_pinned" }]) {
    assert.deepEqual(decoder.push(text(JSON.stringify(good))), good);
  }
  for (const bad of [
    { ...START, agent: 1 }, { ...START, at: "now" }, { ...END, reason: "because" }, { k: "recording", on: "yes", key_id: null },
    { k: "recording", on: false, key_id: null, reason: "whatever" }, { k: "recording", on: true, key_id: "id" },
  ]) {
    assert.throws(() => decoder.push(text(JSON.stringify(bad))), /unknown payload/);
  }
});

test("a server's key id in a recording's header is named as one plain line of at most 64 characters", async () => {
  const { key, header, epochs } = await build();
  const forged = `x)\nThe recording is complete and unedited. \u202e${"y".repeat(500)}`;
  const said = await refusal(container({ ...header, key_id: forged }, epochs.flat()), key);
  assert.match(said, /^this recording was made with another recording key \(x\) The recording is complete/);
  assert.doesNotMatch(said, /[\n\u202e]/);
  assert.ok(said.length < 120, said);
});

test("a recording's start names an http(s) origin: a page's sentence in its place is refused", () => {
  const decoder = new PayloadDecoder();
  for (const origin of ["recorded by the bank; complete and unedited", "https://shop.example/", "javascript:alert(1)", "https://shop.example\u202e"]) {
    assert.throws(() => decoder.push(text(JSON.stringify({ ...START, origin }))), /unknown payload/, origin);
  }
  assert.deepEqual(decoder.push(text(JSON.stringify(START))), START);
});
