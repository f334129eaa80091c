"""Deflate and inflate of a large snapshot's parts in Chromium: pako (the epoch's stream, level 6,
as sdk/src/shared/payload.ts's PackStream) against the browser's native CompressionStream and
DecompressionStream (packAlone, and its inflate read in 4 KiB slices), issue 17 item 4.

The parts are made in the page: a synthetic rrweb full snapshot of 3,000 product rows (varied
words, numbers and inline styles, so that it compresses about 10x, as real pages do), split
into `{"k":"part",…}` frames as encodePayload splits a payload over 512 KiB. Each figure is the
median of the rounds' main-thread milliseconds for all the parts.

    .venv/bin/python bench/deflate_native.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import launch

PAKO = Path(__file__).resolve().parent.parent / "sdk/node_modules/pako/dist/browser/pako.umd.min.js"
MEASURE = """async (rounds) => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const words = ("shell taped seams zip packable hood sizes colour warm light trail summit " +
    "alpine merino fleece down insulated breathable durable waterproof windproof stretch " +
    "recycled nylon polyester cotton wool strap buckle pocket").split(" ");
  const sentence = () => Array.from({length: 12}, () => words[Math.floor(rnd() * words.length)])
    .join(" ") + " " + Math.floor(rnd() * 1e6);
  const text = (id) => ({type: 3, textContent: sentence(), id});
  const rows = [];
  for (let i = 0; i < 3000; i++) {
    const colour = Math.floor(rnd() * 255);
    const style = `color: rgb(${colour}, 20, 30); margin: ${Math.floor(rnd() * 20)}px`;
    const id = 100 + i * 7;
    rows.push({type: 2, tagName: "article", attributes: {class: "row", style}, id, childNodes: [
      {type: 2, tagName: "h3", attributes: {}, id: id + 1, childNodes: [text(id + 2)]},
      {type: 2, tagName: "p", attributes: {}, id: id + 3, childNodes: [text(id + 4)]}]});
  }
  const snapshot = {type: 2, data: {node: {type: 0, childNodes: rows}}};
  const json = JSON.stringify({k: "events", events: [snapshot]});
  const encoder = new TextEncoder();
  const slice = Math.floor((512 * 1024 - 128) / 3);
  const parts = [];
  for (let i = 0; i * slice < json.length; i++) {
    const d = json.slice(i * slice, (i + 1) * slice);
    parts.push(encoder.encode(JSON.stringify({k: "part", id: 1, i, n: 0, d})));
  }
  const drain = async (readable) => {
    const reader = readable.getReader();
    const chunks = [];
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return chunks;
      chunks.push(value);
    }
  };
  const size = (chunks) => chunks.reduce((n, c) => n + c.length, 0);
  const times = {pakoDeflate: [], nativeDeflate: [], pakoInflate: [], nativeInflate: []};
  const out = {raw: size(parts), parts: parts.length};
  for (let round = 0; round < rounds; round++) {
    let start = performance.now();
    const deflate = new pako.Deflate({level: 6, raw: true, memLevel: 9});
    let chunks = [];
    deflate.onData = (c) => chunks.push(c);
    for (const part of parts) deflate.push(part, pako.Z_SYNC_FLUSH);
    times.pakoDeflate.push(performance.now() - start);
    out.pakoBytes = size(chunks);
    start = performance.now();
    const alone = [];
    for (const part of parts) {
      const stream = new CompressionStream("deflate-raw");
      const writer = stream.writable.getWriter();
      writer.write(part).then(() => writer.close());
      const got = await drain(stream.readable);
      const whole = new Uint8Array(size(got));
      got.reduce((at, c) => (whole.set(c, at), at + c.length), 0);
      alone.push(whole);
    }
    times.nativeDeflate.push(performance.now() - start);
    out.nativeBytes = size(alone);
    start = performance.now();
    for (const body of alone) {
      new pako.Inflate({raw: true, chunkSize: 16384}).push(body, pako.Z_SYNC_FLUSH);
    }
    times.pakoInflate.push(performance.now() - start);
    start = performance.now();
    for (const body of alone) {
      const stream = new DecompressionStream("deflate-raw");
      const writer = stream.writable.getWriter();
      const writing = (async () => {
        for (let at = 0; at < body.length; at += 4096) {
          await writer.write(body.subarray(at, at + 4096));
        }
        await writer.close();
      })();
      await drain(stream.readable);
      await writing;
    }
    times.nativeInflate.push(performance.now() - start);
  }
  for (const [name, values] of Object.entries(times)) {
    values.sort((a, b) => a - b);
    out[name] = values[Math.floor(values.length / 2)];
  }
  return out;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto("about:blank")
        page.add_script_tag(content=PAKO.read_text())
        got = page.evaluate(MEASURE, args.rounds)
        browser.close()
    raw = got["raw"]
    print(f"{got['parts']} parts, {raw / 1e3:.0f} KB raw (median of {args.rounds} rounds):")
    labels = (("pako", "pako, the epoch's stream"), ("native", "native, each on its own"))
    for name, label in labels:
        size = got[f"{name}Bytes"]
        print(
            f"  {label}: deflate {got[f'{name}Deflate']:.1f} ms, inflate "
            f"{got[f'{name}Inflate']:.1f} ms, {size / 1e3:.1f} KB ({raw / size:.2f}x)"
        )
    print(f"  native/pako: deflate {got['nativeDeflate'] / got['pakoDeflate']:.2f}, inflate "
          f"{got['nativeInflate'] / got['pakoInflate']:.2f}")  # fmt: skip
    print(f"load average (1 min) {load:.1f} at start, {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
