import assert from "node:assert/strict";
import { test } from "node:test";
import { M, N, passwordScalar, randomScalar, Spake2, Spake2Error, bytesToBigInt } from "../src/shared/e2e/spake2.ts";
import { p256 } from "@noble/curves/nist.js";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const unhex = (text: string) => new Uint8Array(Buffer.from(text, "hex"));
const big = (text: string) => BigInt(`0x${text}`);

// RFC 9382 Appendix B, SPAKE2-P256-SHA256-HKDF-HMAC (AAD empty).
const VECTORS = [
  { idA: "server", idB: "client",
    w: "2ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f",
    x: "43dd0fd7215bdcb482879fca3220c6a968e66d70b1356cac18bb26c84a78d729",
    y: "dcb60106f276b02606d8ef0a328c02e4b629f84f89786af5befb0bc75b6e66be",
    pA: "04a56fa807caaa53a4d28dbb9853b9815c61a411118a6fe516a8798434751470f9010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c",
    pB: "0406557e482bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d09857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591a1e0b7",
    tt: "06000000000000007365727665720600000000000000636c69656e74410000000000000004a56fa807caaa53a4d28dbb9853b9815c61a411118a6fe516a8798434751470f9010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c41000000000000000406557e482bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d09857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591a1e0b741000000000000000412af7e89717850671913e6b469ace67bd90a4df8ce45c2af19010175e37eed69f75897996d539356e2fa6a406d528501f907e04d97515fbe83db277b715d332520000000000000002ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f",
    ke: "0e0672dc86f8e45565d338b0540abe69",
    cA: "58ad4aa88e0b60d5061eb6b5dd93e80d9c4f00d127c65b3b35b1b5281fee38f0",
    cB: "d3e2e547f1ae04f2dbdbf0fc4b79f8ecff2dff314b5d32fe9fcef2fb26dc459b" },
  { idA: "", idB: "client",
    w: "0548d8729f730589e579b0475a582c1608138ddf7054b73b5381c7e883e2efae",
    x: "403abbe3b1b4b9ba17e3032849759d723939a27a27b9d921c500edde18ed654b",
    y: "903023b6598908936ea7c929bd761af6039577a9c3f9581064187c3049d87065",
    pA: "04a897b769e681c62ac1c2357319a3d363f610839c4477720d24cbe32f5fd85f44fb92ba966578c1b712be6962498834078262caa5b441ecfa9d4a9485720e918a",
    pB: "04e0f816fd1c35e22065d5556215c097e799390d16661c386e0ecc84593974a61b881a8c82327687d0501862970c64565560cb5671f696048050ca66ca5f8cc7fc",
    ke: "642f05c473c2cd79909f9a841e2f30a7",
    cA: "47d29e6666af1b7dd450d571233085d7a9866e4d49d2645e2df975489521232b",
    cB: "3313c5cefc361d27fb16847a91c2a73b766ffa90a4839122a9b70a2f6bd1d6df" },
  { idA: "server", idB: "",
    w: "626e0cdc7b14c9db3e52a0b1b3a768c98e37852d5db30febe0497b14eae8c254",
    x: "07adb3db6bc623d3399726bfdbfd3d15a58ea776ab8a308b00392621291f9633",
    y: "b6a4fc8dbb629d4ba51d6f91ed1532cf87adec98f25dd153a75accafafedec16",
    pA: "04f88fb71c99bfffaea370966b7eb99cd4be0ff1a7d335caac4211c4afd855e2e15a873b298503ad8ba1d9cbb9a392d2ba309b48bfd7879aefd0f2cea6009763b0",
    pB: "040c269d6be017dccb15182ac6bfcd9e2a14de019dd587eaf4bdfd353f031101e7cca177f8eb362a6e83e7d5e729c0732e1b528879c086f39ba0f31a9661bd34db",
    ke: "005184ff460da2ce59062c87733c299c",
    cA: "bc9f9bbe99f26d0b2260e6456e05a86196a3307ec6663a18bf6ac825736533b2",
    cB: "c2370e1bf813b086dff0d834e74425a06e6390f48f5411900276dcccc5a297ec" },
  { idA: "", idB: "",
    w: "7bf46c454b4c1b25799527d896508afd5fc62ef4ec59db1efb49113063d70cca",
    x: "8cef65df64bb2d0f83540c53632de911b5b24b3eab6cc74a97609fd659e95473",
    y: "d7a66f64074a84652d8d623a92e20c9675c61cb5b4f6a0063e4648a2fdc02d53",
    pA: "04a65b367a3f613cf9f0654b1b28a1e3a8a40387956c8ba6063e8658563890f46ca1ef6a676598889fc28de2950ab8120b79a5ef1ea4c9f44bc98f585634b46d66",
    pB: "04589f13218822710d98d8b2123a079041052d9941b9cf88c6617ddb2fcc0494662eea8ba6b64692dc318250030c6af045cb738bc81ba35b043c3dcb46adf6f58d",
    ke: "fc6374762ba5cf11f4b2caa08b2cd1b9",
    cA: "dfb4db8d48ae5a675963ea5e6c19d98d4ea028d8e898dad96ea19a80ade95dca",
    cB: "d0f0609d1613138d354f7e95f19fb556bf52d751947241e8c7118df5ef0ae175" },
];

test("RFC 9382 Appendix B vectors: shares, transcript, Ke and confirmation MACs", () => {
  for (const v of VECTORS) {
    const a = new Spake2({ role: "A", w: big(v.w), scalar: big(v.x), idA: v.idA, idB: v.idB });
    const b = new Spake2({ role: "B", w: big(v.w), scalar: big(v.y), idA: v.idA, idB: v.idB });
    assert.equal(hex(a.share), v.pA);
    assert.equal(hex(b.share), v.pB);
    const fa = a.finish(b.share);
    const fb = b.finish(a.share);
    if (v.tt) assert.equal(hex(fa.transcript), v.tt);
    assert.equal(hex(fa.ke), v.ke);
    assert.equal(hex(fb.ke), v.ke);
    assert.equal(hex(fa.confirmation), v.cA);
    assert.equal(hex(fb.confirmation), v.cB);
    assert.ok(fa.verifyPeer(fb.confirmation));
    assert.ok(fb.verifyPeer(fa.confirmation));
  }
});

test("M and N are the RFC's points", () => {
  assert.equal(hex(M.toBytes(true)), "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f");
  assert.equal(hex(N.toBytes(true)), "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49");
});

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

function run(secretA: string, secretB: string, aad = new Uint8Array(0)) {
  const a = new Spake2({ role: "A", w: passwordScalar(secretA, "s1"), scalar: randomScalar(random), aad });
  const b = new Spake2({ role: "B", w: passwordScalar(secretB, "s1"), scalar: randomScalar(random), aad });
  return { fa: a.finish(b.share), fb: b.finish(a.share) };
}

test("the same secret agrees on a key and confirms both ways", () => {
  const { fa, fb } = run("1234567", "1234567");
  assert.equal(hex(fa.ke), hex(fb.ke));
  assert.ok(fa.verifyPeer(fb.confirmation) && fb.verifyPeer(fa.confirmation));
});

test("a wrong secret fails confirmation on both sides", () => {
  const { fa, fb } = run("1234567", "1234568");
  assert.notEqual(hex(fa.ke), hex(fb.ke));
  assert.ok(!fa.verifyPeer(fb.confirmation));
  assert.ok(!fb.verifyPeer(fa.confirmation));
});

test("the password scalar is bound to the session", () => {
  assert.notEqual(passwordScalar("1234567", "s1"), passwordScalar("1234567", "s2"));
  assert.throws(() => passwordScalar("", "s1"), Spake2Error);
});

test("a man in the middle who swaps in his own share is caught", () => {
  // The relay replaces B's share with one made from a guessed secret.
  const a = new Spake2({ role: "A", w: passwordScalar("1234567", "s1"), scalar: randomScalar(random) });
  const mallory = new Spake2({ role: "B", w: passwordScalar("7654321", "s1"), scalar: randomScalar(random) });
  const fm = mallory.finish(a.share);
  const fa = a.finish(mallory.share);
  assert.ok(!fa.verifyPeer(fm.confirmation));
});

test("malformed, off-curve, compressed and degenerate shares are refused", () => {
  const w = passwordScalar("1234567", "s1");
  const bad = [
    new Uint8Array(0), new Uint8Array(65), unhex(`04${"ff".repeat(64)}`), N.toBytes(true),
    N.multiply(w).toBytes(false), // pB - w*N would be the identity
  ];
  for (const share of bad) {
    const a = new Spake2({ role: "A", w, scalar: randomScalar(random) });
    assert.throws(() => a.finish(share), Spake2Error, hex(share));
  }
});

test("an exchange cannot be finished twice", () => {
  const w = passwordScalar("1234567", "s1");
  const a = new Spake2({ role: "A", w, scalar: randomScalar(random) });
  const b = new Spake2({ role: "B", w, scalar: randomScalar(random) });
  a.finish(b.share);
  assert.throws(() => a.finish(b.share), Spake2Error);
});

test("scalars are in range", () => {
  const n = p256.Point.Fn.ORDER;
  for (let i = 0; i < 50; i++) {
    const s = randomScalar(random);
    assert.ok(s > 0n && s < n);
  }
  assert.equal(bytesToBigInt(new Uint8Array([1, 0])), 256n);
});
