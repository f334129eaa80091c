// What each bundle is made of: the customer widget stays free of any view library (it runs in
// the site's page, next to the site's own code); the console renders with lit-html.
import assert from "node:assert/strict";
import { test } from "node:test";
import { build } from "esbuild";

async function packages(entry: string): Promise<Set<string>> {
  const result = await build({
    entryPoints: [new URL(`../src/${entry}`, import.meta.url).pathname],
    bundle: true, write: false, metafile: true, format: "iife", logLevel: "silent",
    define: { __TANDEM_BENCH_PLAINTEXT__: "false", __TANDEM_VERSION__: '"0"' },
  });
  const names = Object.keys(result.metafile.inputs)
    .map((path) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1])
    .filter((name): name is string => name !== undefined);
  return new Set(names);
}

test("the customer SDK bundles rrweb, the crypto library and pako, and no view library", async () => {
  const used = await packages("share/index.ts");
  assert.ok(!used.has("lit-html"));
  assert.ok(used.has("pako")); // one compression stream per epoch, sync-flushed (issue 17)
  for (const name of used) assert.match(name, /^(rrweb|@rrweb\/.*|@noble\/.*|pako)$/, name);
});

test("the console renders with lit-html", async () => {
  assert.ok((await packages("console/index.ts")).has("lit-html"));
});
