// The page's size budget: its own wasm + JS (trunk's output and www/, uPlot included) must
// stay within 500 KB gzipped; the MNIST asset is fetched lazily and not counted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT, DIST } from "./harness.mjs";

const BUDGET = 500 * 1024;

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === "assets" ? [] : files(p);
    return /\.(wasm|m?js)$/.test(e.name) ? [p] : [];
  });
}

test("the page's own wasm + JS stay within 500 KB gzipped; the MNIST asset is there", (t) => {
  if (!existsSync(join(DIST, "index.html"))) execFileSync("trunk", ["build", "--release"], { cwd: ROOT, stdio: "inherit" });
  const sizes = files(DIST).map((f) => {
    const raw = readFileSync(f);
    return { f: relative(DIST, f), raw: raw.length, gz: gzipSync(raw, { level: 9 }).length };
  });
  const total = sizes.reduce((a, s) => a + s.gz, 0);
  for (const s of sizes.sort((a, b) => b.gz - a.gz)) t.diagnostic(`${s.f}: ${s.raw} B, ${s.gz} B gzipped`);
  t.diagnostic(`total ${(total / 1024).toFixed(1)} KB gzipped of a ${BUDGET / 1024} KB budget`);
  assert.ok(sizes.some((s) => s.f.endsWith(".wasm")), "no wasm in dist/");
  assert.ok(total <= BUDGET, `${total} B gzipped is over the ${BUDGET} B budget`);
  const manifest = JSON.parse(readFileSync(join(DIST, "www/assets/mnist/manifest.json"), "utf8"));
  for (const [set, m] of Object.entries(manifest.sets)) {
    for (const f of m.files) {
      const bytes = readFileSync(join(DIST, "www/assets/mnist", set, f.name));
      assert.equal(bytes.length, f.bytes, `${set}/${f.name}`);
      assert.deepEqual([bytes[0], bytes[1]], [0x1f, 0x8b], `${set}/${f.name} is not gzip`);
    }
  }
  assert.equal(manifest.sets.subset.train, 10000);
  assert.equal(manifest.sets.full.test, 10000);
});
