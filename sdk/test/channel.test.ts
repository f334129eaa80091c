import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ChannelError, ContentReceiver, ContentSender, KIND_EPOCH_KEY, KIND_WATCHER_KEY, derivePairwiseKeys,
} from "../src/shared/e2e/channel.ts";

const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array | null) => (b ? new TextDecoder().decode(b) : null);

async function pair(sessionId = "s1") {
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke.slice(), sessionId);
  const agent = await derivePairwiseKeys(ke.slice(), sessionId);
  const sender = await ContentSender.create(sessionId, 1, [customer.customerToAgent]);
  const receiver = new ContentReceiver(sessionId, agent.customerToAgent);
  assert.equal(await receiver.open(sender.epochKeyFrames[0]), null);
  return { sender, receiver, customer, agent };
}

test("content round-trips in order, encrypted once", async () => {
  const { sender, receiver } = await pair();
  const frames = await Promise.all(["one", "two", "three"].map((s) => sender.seal(text(s))));
  for (const f of frames) assert.ok(!new TextDecoder().decode(f).includes("one"));
  assert.deepEqual(await Promise.all(frames.map(async (f) => read(await receiver.open(f)))), ["one", "two", "three"]);
});

test("derivation zeroes Ke", async () => {
  const ke = crypto.getRandomValues(new Uint8Array(16));
  await derivePairwiseKeys(ke, "s1");
  assert.ok(ke.every((b) => b === 0));
});

test("keys are not extractable", async () => {
  const { customer } = await pair();
  assert.equal(customer.customerToAgent.extractable, false);
  await assert.rejects(crypto.subtle.exportKey("raw", customer.customerToAgent));
});

test("a tampered frame is rejected", async () => {
  const { sender, receiver } = await pair();
  const f = await sender.seal(text("hello"));
  f[f.length - 1] ^= 1;
  await assert.rejects(receiver.open(f), ChannelError);
});

test("a tampered header (counter or epoch) is rejected", async () => {
  const { sender, receiver } = await pair();
  const first = await sender.seal(text("a"));
  const second = await sender.seal(text("b"));
  second[16] = 0; // claim counter 0: authenticated data no longer matches
  await assert.rejects(receiver.open(second), ChannelError);
  assert.equal(read(await receiver.open(first)), "a");
});

test("a replayed frame is rejected", async () => {
  const { sender, receiver } = await pair();
  const f = await sender.seal(text("pay"));
  await receiver.open(f);
  await assert.rejects(receiver.open(f), /replayed/);
});

test("reordered or dropped frames are rejected", async () => {
  const { sender, receiver } = await pair();
  await sender.seal(text("first"));
  const second = await sender.seal(text("second"));
  await assert.rejects(receiver.open(second), /dropped or reordered/);
});

test("a frame from another session does not open", async () => {
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke.slice(), "s1");
  const agent = await derivePairwiseKeys(ke.slice(), "s2");
  const sender = await ContentSender.create("s1", 1, [customer.customerToAgent]);
  const receiver = new ContentReceiver("s2", agent.customerToAgent);
  await assert.rejects(receiver.open(sender.epochKeyFrames[0]), ChannelError);
});

test("the wrong pairwise key cannot open the epoch key", async () => {
  const customer = await derivePairwiseKeys(crypto.getRandomValues(new Uint8Array(16)), "s1");
  const stranger = await derivePairwiseKeys(crypto.getRandomValues(new Uint8Array(16)), "s1");
  const sender = await ContentSender.create("s1", 1, [customer.customerToAgent]);
  await assert.rejects(new ContentReceiver("s1", stranger.customerToAgent).open(sender.epochKeyFrames[0]), ChannelError);
});

test("a new epoch (next page) resets counters; an old epoch key is refused", async () => {
  const { sender, receiver, customer } = await pair();
  await receiver.open(await sender.seal(text("page 1")));
  const next = await ContentSender.create("s1", 2, [customer.customerToAgent]);
  await receiver.open(next.epochKeyFrames[0]);
  assert.equal(read(await receiver.open(await next.seal(text("page 2")))), "page 2");
  await assert.rejects(receiver.open(sender.epochKeyFrames[0]), /old key/);
  await assert.rejects(receiver.open(await sender.seal(text("late"))), ChannelError);
});

test("a receiver that starts from an epoch already seen (a reloaded console) refuses its key and older ones", async () => {
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke.slice(), "s1");
  const agent = await derivePairwiseKeys(ke.slice(), "s1");
  const receiver = new ContentReceiver("s1", agent.customerToAgent, KIND_EPOCH_KEY, 2);
  assert.equal(receiver.epoch, 2);
  for (const epoch of [1, 2]) {
    const old = await ContentSender.create("s1", epoch, [customer.customerToAgent]);
    await assert.rejects(receiver.open(old.epochKeyFrames[0]), /old key/);
    await assert.rejects(receiver.open(await old.seal(text("old page"))), ChannelError);
  }
  const next = await ContentSender.create("s1", 3, [customer.customerToAgent]);
  assert.equal(await receiver.open(next.epochKeyFrames[0]), null);
  assert.equal(receiver.epoch, 3);
  assert.equal(read(await receiver.open(await next.seal(text("page 3")))), "page 3");
});

test("content before any key and garbage frames are rejected", async () => {
  const keys = await derivePairwiseKeys(crypto.getRandomValues(new Uint8Array(16)), "s1");
  const receiver = new ContentReceiver("s1", keys.customerToAgent);
  for (const bad of [new Uint8Array(0), new Uint8Array(20), Uint8Array.of(9, ...new Array(30).fill(0))]) {
    await assert.rejects(receiver.open(bad), ChannelError);
  }
});

import { CommandReceiver, CommandSender } from "../src/shared/e2e/channel.ts";

test("commands reach the customer; replays are refused; gaps are allowed", async () => {
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const agentKeys = await derivePairwiseKeys(ke.slice(), "s1");
  const customerKeys = await derivePairwiseKeys(ke.slice(), "s1");
  const sender = new CommandSender("s1", agentKeys.agentToCustomer);
  const receiver = new CommandReceiver("s1", customerKeys.agentToCustomer);
  const first = await sender.seal(text("click"));
  await sender.seal(text("lost while the page loaded"));
  const third = await sender.seal(text("type"));
  assert.equal(read(await receiver.open(first)), "click");
  assert.equal(read(await receiver.open(third)), "type");
  await assert.rejects(receiver.open(first), /replayed/);
  const next = new CommandReceiver("s1", customerKeys.agentToCustomer, receiver.last); // new page
  await assert.rejects(next.open(third), /replayed/);
});

test("a command under the content key or altered does not open", async () => {
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const keys = await derivePairwiseKeys(ke.slice(), "s1");
  const forged = await new CommandSender("s1", keys.customerToAgent).seal(text("click"));
  await assert.rejects(new CommandReceiver("s1", keys.agentToCustomer).open(forged), ChannelError);
  const good = await new CommandSender("s1", keys.agentToCustomer).seal(text("click"));
  good[10] ^= 1;
  await assert.rejects(new CommandReceiver("s1", keys.agentToCustomer).open(good), ChannelError);
});

test("a watching supervisor gets its own wrapped key; each receiver skips the other's", async () => {
  const agentKe = crypto.getRandomValues(new Uint8Array(16));
  const watcherKe = crypto.getRandomValues(new Uint8Array(16));
  const customerAgent = await derivePairwiseKeys(agentKe.slice(), "s1");
  const agent = await derivePairwiseKeys(agentKe.slice(), "s1");
  const customerWatcher = await derivePairwiseKeys(watcherKe.slice(), "s1|watcher");
  const watcher = await derivePairwiseKeys(watcherKe.slice(), "s1|watcher");
  const sender = await ContentSender.create("s1", 3, [customerAgent.customerToAgent], customerWatcher.customerToAgent);
  assert.equal(sender.epochKeyFrames.length, 2);
  assert.deepEqual(sender.epochKeyFrames.map((f) => f[0]), [KIND_EPOCH_KEY, KIND_WATCHER_KEY]);
  const forAgent = new ContentReceiver("s1", agent.customerToAgent);
  const forWatcher = new ContentReceiver("s1", watcher.customerToAgent, KIND_WATCHER_KEY);
  for (const frame of sender.epochKeyFrames) {
    assert.equal(await forAgent.open(frame), null);
    assert.equal(await forWatcher.open(frame), null);
  }
  const sealed = await sender.seal(text("both see this"));
  assert.equal(read(await forAgent.open(sealed)), "both see this");
  assert.equal(read(await forWatcher.open(sealed)), "both see this");
});

test("a relay cannot turn the agent's wrapped key into the supervisor's", async () => {
  const ke = crypto.getRandomValues(new Uint8Array(16));
  const customer = await derivePairwiseKeys(ke.slice(), "s1");
  const agent = await derivePairwiseKeys(ke.slice(), "s1");
  const sender = await ContentSender.create("s1", 1, [customer.customerToAgent]);
  const relabelled = sender.epochKeyFrames[0].slice();
  relabelled[0] = KIND_WATCHER_KEY; // the kind is bound into the additional data
  await assert.rejects(new ContentReceiver("s1", agent.customerToAgent, KIND_WATCHER_KEY).open(relabelled), ChannelError);
});

test("without its key, a supervisor cannot read content", async () => {
  const { sender } = await pair();
  const stranger = await derivePairwiseKeys(crypto.getRandomValues(new Uint8Array(16)), "s1|watcher");
  const forWatcher = new ContentReceiver("s1", stranger.customerToAgent, KIND_WATCHER_KEY);
  await assert.rejects(forWatcher.open(await sender.seal(text("secret"))), ChannelError);
});
