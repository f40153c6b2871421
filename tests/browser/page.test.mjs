// End-to-end: the built page (dist/, from `trunk build --release`) in headless Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, DIST, serve, launch, openPage, screenshot } from "./harness.mjs";

let server;

before(async () => {
  // `make test-browser` builds first; build here too when run on its own.
  if (!existsSync(join(DIST, "index.html"))) {
    execFileSync("trunk", ["build", "--release"], { cwd: ROOT, stdio: "inherit" });
  }
  server = await serve();
});

after(async () => {
  await server?.close();
});

test("with WebGPU: adapter info shown and the smoke matmul matches the CPU twin", async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, console } = await openPage(browser, server.url);
    const state = await page.evaluate(() => window.__varlab);
    await screenshot(page, "smoke-webgpu");
    assert.equal(state.reason, null, `page reported: ${state.message}\nconsole:\n${console.join("\n")}`);
    assert.equal(state.ok, true);
    const s = state.smoke;
    assert.equal(s.matches_cpu, true);
    assert.ok(s.max_abs_error <= s.max_allowed_error);
    assert.deepEqual(s.shape, [67, 45, 33]);
    // The adapter is reported and shown (SwiftShader in headless Chromium without a GPU).
    assert.ok(s.adapter.backend.length > 0);
    assert.ok(s.adapter.limits.max_storage_buffer_binding_size >= 128 * 2 ** 20);
    assert.equal(await page.locator("#gpu").isVisible(), true);
    assert.match(await page.locator('dd[data-key="backend"]').textContent(), /BrowserWebGpu/);
    const shown = await page.locator('dd[data-key="adapter"]').textContent();
    const b = state.browserAdapter;
    assert.ok(b.vendor || b.architecture, "navigator.gpu reported no adapter info");
    assert.ok(shown.includes(b.vendor) && shown.includes(b.architecture), shown);
    assert.match(await page.locator("#smoke-result").textContent(), /matches the CPU twin/);
    // The benchmark rows made it to the table.
    assert.equal(await page.locator("#bench tbody tr").count(), s.bench.length);
    for (const r of s.bench) assert.ok(r.gflops > 0, JSON.stringify(r));
    process.stdout.write(`# adapter ${shown}; ` +
      s.bench.map((r) => `${r.m}³ ${r.gflops.toFixed(3)} GFLOP/s (${r.method})`).join(", ") + "\n");
  } finally {
    await browser.close();
  }
});

test("without WebGPU: the page explains why and what to do", async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await openPage(browser, server.url, { timeout: 60_000 });
    const state = await page.evaluate(() => window.__varlab);
    await screenshot(page, "no-webgpu");
    assert.equal(state.ok, false);
    assert.equal(state.reason, "no-adapter");
    const text = await page.locator("#status-text").textContent();
    assert.match(text, /no GPU adapter/);
    assert.match(text, /--enable-unsafe-webgpu/);
    assert.equal(await page.locator("#status").getAttribute("class"), "error");
    assert.equal(await page.locator("#gpu").isVisible(), false);
  } finally {
    await browser.close();
  }
});
