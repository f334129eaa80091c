import assert from "node:assert/strict";
import { test } from "node:test";
import { CommandReceiver, CommandSender, type PairwiseKeys } from "../src/shared/e2e/channel.ts";
import { fromBase64Url, randomBytes, toBase64Url } from "../src/shared/e2e/encoding.ts";
import { type Pairing, type PairingStep, startPairing } from "../src/shared/e2e/pairing.ts";

const SESSION = "session-1";

function pair(customerSecret: string, consoleSecret: string, peer: "agent" | "watcher" = "agent") {
  const customer = startPairing({ side: "customer", peer, secret: customerSecret, sessionId: SESSION, random: randomBytes });
  const agent = startPairing({ side: "console", peer, secret: consoleSecret, sessionId: SESSION, random: randomBytes });
  return { customer, agent };
}

/** Runs the three messages through a relay that passes them on unchanged. */
async function run(customer: Pairing, agent: Pairing): Promise<{ a: PairingStep; b: PairingStep | null; last: PairingStep | null }> {
  assert.ok(customer.opening);
  const reply = await agent.receive(customer.opening);
  if (reply.kind !== "reply") return { a: reply, b: null, last: null };
  const a = await customer.receive(reply.data);
  if (a.kind !== "paired" || !a.data) return { a, b: reply, last: null };
  return { a, b: reply, last: await agent.receive(a.data) };
}

/** The keys work together: a command sealed by the agent opens on the customer's side. */
async function talk(agentKeys: PairwiseKeys, customerKeys: PairwiseKeys, keyId: string): Promise<void> {
  const sealed = await new CommandSender(keyId, agentKeys.agentToCustomer).seal(new TextEncoder().encode("hello"));
  const opened = await new CommandReceiver(keyId, customerKeys.agentToCustomer, 0).open(sealed);
  assert.equal(new TextDecoder().decode(opened), "hello");
}

test("the same code pairs both sides with keys that work together", async () => {
  const { customer, agent } = pair("1234567", "1234567");
  const { a, last } = await run(customer, agent);
  assert.equal(a.kind, "paired");
  assert.equal(last?.kind, "paired");
  if (a.kind !== "paired" || last?.kind !== "paired") return;
  assert.equal(last.data, null);
  await talk(last.keys, a.keys, SESSION);
});

test("a supervisor pairs under the watcher id, and its keys are not the agent's", async () => {
  const { customer, agent } = pair("7654321", "7654321", "watcher");
  assert.equal(customer.keyId, `${SESSION}|watcher`);
  const { a, last } = await run(customer, agent);
  assert.ok(a.kind === "paired" && last?.kind === "paired");
  await talk(last.keys, a.keys, customer.keyId);
  const other = pair("7654321", "7654321", "agent");
  const agentRun = await run(other.customer, other.agent);
  assert.ok(agentRun.last?.kind === "paired");
  await assert.rejects(talk(agentRun.last.keys, a.keys, customer.keyId));
});

test("a wrong code is a mismatch on the customer's side, before it sends its confirmation", async () => {
  const { customer, agent } = pair("1234567", "1234568");
  const { a } = await run(customer, agent);
  assert.equal(a.kind, "mismatch");
});

test("the console refuses a customer confirmation made with another code", async () => {
  const { customer, agent } = pair("1111111", "1111111");
  const stranger = pair("2222222", "2222222");
  assert.ok(customer.opening);
  const reply = await agent.receive(customer.opening);
  assert.equal(reply.kind, "reply");
  // The relay answers with a confirmation from an exchange it ran itself.
  const { a } = await run(stranger.customer, stranger.agent);
  assert.ok(a.kind === "paired" && a.data);
  assert.equal((await agent.receive(a.data)).kind, "mismatch");
});

test("garbled, short or out-of-turn messages are mismatches, never exceptions", async () => {
  for (const data of ["", "!!not base64!!", toBase64Url(new Uint8Array(10)), toBase64Url(new Uint8Array(65))]) {
    const { customer, agent } = pair("1234567", "1234567");
    assert.equal((await customer.receive(data)).kind, "mismatch", `customer: ${data}`);
    assert.equal((await agent.receive(data)).kind, "mismatch", `console: ${data}`);
  }
  // A share flipped by one bit is not on the curve, or not the share the code expects.
  const { customer, agent } = pair("1234567", "1234567");
  assert.ok(customer.opening);
  const flipped = fromBase64Url(customer.opening);
  flipped[10] ^= 1;
  const reply = await agent.receive(toBase64Url(flipped));
  if (reply.kind === "reply") assert.equal((await customer.receive(reply.data)).kind, "mismatch");
  else assert.equal(reply.kind, "mismatch");
});

test("a pairing takes its messages once: a replay after it finished is a mismatch", async () => {
  const { customer, agent } = pair("1234567", "1234567");
  const { a, b, last } = await run(customer, agent);
  assert.ok(a.kind === "paired" && a.data && b?.kind === "reply" && last?.kind === "paired");
  assert.equal((await customer.receive(b.data)).kind, "mismatch");
  assert.equal((await agent.receive(a.data)).kind, "mismatch");
});

test("the console has no opening message; the customer has one share", () => {
  const { customer, agent } = pair("1234567", "1234567");
  assert.equal(agent.opening, null);
  assert.equal(fromBase64Url(customer.opening ?? "").length, 65);
});
