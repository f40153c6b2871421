// End-to-end: the engine's presets on the built page (dist/), λψ₀ and the initialisation in
// the URL, and the paired statistics (rows "VAR − SGD" and the verdict sentence) after a tiny
// run. Configs compare exactly (deepEqual): the page passes the engine's numbers through
// unchanged. The run is tiny (64 training images, one step per run) and on the CPU executor.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildIfMissing, serve, launch, openPage, screenshot } from "./harness.mjs";

const FIXTURE = join(import.meta.dirname, "fixtures/results-small.json");
const RUN_TIMEOUT = 480_000;

let server;
let browser;
let context;

before(async () => {
  buildIfMissing();
  server = await serve();
  browser = await launch({ webgpu: true });
  context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const open = (query) => openPage(context, `${server.url}${query ? `?${query}` : ""}`, { timeout: 120_000 });

/** The config the page would send to the engine, and the engine's presets. */
const pageConfig = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.__varlab.state.config)));
const enginePresets = (page) => page.evaluate(() => JSON.parse(window.wasmBindings.presets()));

test("a bare URL opens on the first preset: its config, its name in the list, its sentence", async () => {
  const { page } = await open("");
  const presets = await enginePresets(page);
  assert.ok(presets.length >= 2, "the engine has presets");
  assert.equal(presets[0].id, "mlp");
  assert.deepEqual(await pageConfig(page), presets[0].config);
  assert.equal(await page.inputValue("#preset"), presets[0].id);
  assert.deepEqual(await page.locator("#preset option").evaluateAll((os) => os.map((o) => o.value)), presets.map((p) => p.id));
  assert.equal(await page.locator("#preset-about").textContent(), presets[0].about);
  assert.equal(new URL(page.url()).search, "");
  assert.equal(await page.inputValue("#f-model"), presets[0].config.model);
  await page.close();
});

test("each preset, chosen on the page, writes a URL that loaded fresh gives exactly its config", async (t) => {
  const { page } = await open("");
  const presets = await enginePresets(page);
  for (const p of presets) {
    await page.selectOption("#preset", p.id);
    assert.deepEqual(await pageConfig(page), p.config, `${p.id}: the settings after choosing it`);
    assert.equal(await page.locator("#preset-about").textContent(), p.about, p.id);
    assert.equal(await page.inputValue("#f-model"), p.config.model, p.id);
    const url = page.url();
    t.diagnostic(`${p.id}: ${url.slice(server.url.length)}`);
    const fresh = (await openPage(context, url, { timeout: 120_000 })).page;
    const config = await pageConfig(fresh);
    assert.deepEqual(config, p.config, `${p.id}: the config after loading ${url}`);
    assert.equal(await fresh.inputValue("#preset"), p.id);
    assert.equal(await fresh.locator("#messages li").count(), 0, `${p.id}: ${await fresh.locator("#messages").textContent()}`);
    // The engine accepts that config unchanged.
    const checked = await fresh.evaluate((c) => JSON.parse(window.wasmBindings.validate_config(JSON.stringify(c))), config);
    assert.deepEqual(checked, config, p.id);
    await fresh.close();
  }
  // ?preset= with other keys on top.
  const other = presets[1];
  const { page: on } = await open(`preset=${other.id}&e=1&n=2`);
  assert.deepEqual(await pageConfig(on), { ...other.config, epochs: 1, seeds: 2 });
  assert.match(await on.locator("#preset-about").textContent(), /differ from this preset/);
  await on.close();
  await page.close();
});

test("λψ₀ (lp) and the initialisation (in): form, URL and engine agree; blank λψ₀ is lp=off and null", async () => {
  const { page } = await open("lp=off&in=kaiming-normal&m=cnn");
  let config = await pageConfig(page);
  assert.equal(config.lambda_psi0, null);
  assert.equal(config.init, "kaiming-normal");
  assert.equal(config.model, "cnn");
  assert.equal(await page.inputValue("#f-lambda_psi0"), "");
  assert.equal(await page.inputValue("#f-init"), "kaiming-normal");
  const checked = await page.evaluate((c) => JSON.parse(window.wasmBindings.validate_config(JSON.stringify(c))), config);
  assert.equal(checked.lambda_psi0, null);
  assert.equal(checked.init, "kaiming-normal");
  await page.fill("#f-lambda_psi0", "0.7");
  await page.press("#f-lambda_psi0", "Tab");
  assert.match(page.url(), /[?&]lp=0\.7(&|$)/);
  assert.equal((await pageConfig(page)).lambda_psi0, 0.7);
  await page.fill("#f-lambda_psi0", "");
  await page.press("#f-lambda_psi0", "Tab");
  assert.match(page.url(), /[?&]lp=off(&|$)/);
  await page.selectOption("#f-init", "pytorch");
  assert.doesNotMatch(page.url(), /[?&]in=/);
  const url = page.url();
  await page.close();
  const { page: again } = await openPage(context, url, { timeout: 120_000 });
  config = await pageConfig(again);
  assert.equal(config.lambda_psi0, null);
  assert.equal(config.init, "pytorch");
  await again.close();
});

test("after a tiny 2-seed run the table has the row VAR − SGD (mean ± std, t, wins/n) and the verdict sentence is shown", async (t) => {
  const { page, console: logs } = await open("tr=64&te=32&e=1&n=2&m=mlp&o=sgd,var&x=cpu");
  assert.equal(await page.locator("#run-btn").isEnabled(), true);
  await page.click("#run-btn");
  await page.waitForFunction(() => ["done", "error", "cancelled"].includes(window.__varlab.run) && window.__varlab.events > 0,
    null, { timeout: RUN_TIMEOUT });
  const v = await page.evaluate(() => ({ run: window.__varlab.run, errors: window.__varlab.errors }));
  assert.equal(v.run, "done", `${v.errors.join(" / ")}\n${logs.join("\n")}`);
  await screenshot(page, "presets-paired");
  const result = await page.evaluate(() => window.__varlab.result);
  assert.ok(Array.isArray(result.paired) && result.paired.length > 0, "the result has the engine's paired statistics");
  assert.equal(result.verdicts.length, 1);
  t.diagnostic(`verdict: ${result.verdicts[0]}`);
  const row = page.locator('#results-table tr.paired[data-paired="var"][data-metric="accuracy"][data-of="current"]');
  assert.equal(await row.count(), 1);
  assert.equal(await row.locator("th").textContent(), "VAR − SGD");
  const cells = await row.locator("td").evaluateAll((tds) => tds.map((td) => ({ ...td.dataset, text: td.title })));
  assert.equal(cells.length, 1 + result.config.sparsities.length);
  for (const c of cells) {
    const sp = c.sparsity === "dense" ? null : Number(c.sparsity);
    const f32 = (x) => (x === null ? null : Math.fround(x));
    const p = result.paired.find((x) => x.metric === "accuracy" && f32(x.sparsity) === f32(sp));
    assert.ok(p, `no paired entry at ${c.sparsity}`);
    assert.equal(Number(c.mean), p.mean);
    assert.equal(c.n, "2");
    assert.match(c.text, /^[+−]?\d+\.\d ± \d+\.\d( · t = [+−]?\d+\.\d)? · [012]\/2$/, c.text);
  }
  // The difference chart draws it with its band.
  assert.equal(await page.locator("#diff-chart canvas").count(), 1);
  assert.deepEqual(await page.locator("#diff-chart .legend li").allTextContents(), ["VAR − SGD (2 seeds, ± std)"]);
  // The verdict under the chart is the engine's sentence; λ and λψ₀ are under the table.
  assert.deepEqual(await page.locator("#verdicts li").allTextContents(), result.verdicts);
  assert.equal(await page.locator("#verdicts").isVisible(), true);
  assert.match(await page.locator("#table-notes").textContent(), /VAR's strength: λ = \d\.\de-\d+ \(λψ₀ = 1\.\d\d(–\d\.\d\d)?\)\./);
  const lp = result.runs.filter((r) => r.optimizer === "var").map((r) => r.lambda_psi0);
  assert.ok(lp.every((x) => Math.abs(x - 1.4) < 0.2), `λψ₀ of the VAR runs: ${lp}`);
  assert.ok(result.runs.filter((r) => r.optimizer === "sgd").every((r) => r.lambda_psi0 === 0));
  await page.close();
});

test("an older results file (no paired statistics) gets them from the engine when overlaid", async () => {
  const { page } = await open("");
  await page.setInputFiles("#import-file", FIXTURE);
  const row = page.locator('#results-table tr.paired[data-paired="var"][data-of="import"]');
  await row.waitFor({ timeout: 10_000 });
  assert.equal(await row.locator("th").textContent(), "results-small: VAR − SGD");
  const fixture = JSON.parse(readFileSync(FIXTURE, "utf8"));
  const at = (o, s) => fixture.runs.filter((r) => r.optimizer === o).map((r) => r.sweep.find((p) => p.sparsity === s).accuracy);
  const [v, b] = [at("var", 0.9), at("sgd", 0.9)];
  const want = (v[0] - b[0] + v[1] - b[1]) / 2;
  const cell = row.locator('td[data-sparsity="0.9"]');
  const mean = Number(await cell.getAttribute("data-mean"));
  assert.ok(Math.abs(mean - want) < 1e-6, `${mean} vs ${want}`); // the engine reads f32
  assert.equal(await cell.getAttribute("data-n"), "2");
  // (The run of the test before is saved in this context and shown too: its verdict comes first.)
  const verdicts = (await page.locator("#verdicts li").allTextContents()).filter((v) => v.startsWith("results-small: "));
  assert.equal(verdicts.length, 1);
  assert.match(verdicts[0], /^results-small: VAR above SGD at 99 % in 2 of 2 seeds/);
  assert.equal(await page.evaluate(() => window.__varlab.statsError ?? null), null);
  await page.close();
});

test("the ready sentence names the executor Run will use; a #config= fragment is refused with a sentence; a saved experiment cut short says so", async () => {
  // SwiftShader is a software rasteriser: executor auto trains on the CPU, and the page says so.
  const { page } = await open("");
  const status = await page.locator("#status-text").textContent();
  assert.match(status, /^Ready: press Run to train on the CPU executor \(WebAssembly\)/, status);
  await page.close();
  const cpu = (await open("x=cpu")).page;
  assert.match(await cpu.locator("#status-text").textContent(), /CPU executor \(WebAssembly\), as the settings ask/);
  await cpu.close();
  // Settings after "#" are not read, and the page says where they go.
  const frag = await openPage(context, `${server.url}#config=%7B%22model%22%3A%22lenet5%22%7D`, { timeout: 120_000 });
  assert.match(await frag.page.locator("#messages").textContent(), /after “#” .* is not read: settings go after “\?”/);
  assert.equal(await frag.page.inputValue("#f-model"), "mlp", "the fragment changed nothing");
  await frag.page.close();
  // A saved experiment with fewer runs than planned (a reload mid-run) is marked cut short.
  const saved = (await open("")).page;
  await saved.evaluate(async () => {
    const { saveResult } = await import("./www/store.js");
    const config = { ...window.__varlab.state.config, optimizers: ["sgd", "var"], seeds: 4 };
    await saveResult("exp-cut", "mnist · mlp · cut", { version: 1, config, environment: {}, runs: [
      { optimizer: "sgd", seed: 0, dense_accuracy: 0.9, sweep: [] }] });
  });
  await saved.reload();
  await saved.waitForFunction(() => window.__varlab && window.__varlab.done, null, { timeout: 120_000 });
  const text = await saved.locator('#saved-list li[data-id="exp-cut"]').textContent();
  assert.match(text, /1 of 8 runs — cut short/, text);
  await saved.evaluate(async () => (await import("./www/store.js")).deleteResult("exp-cut"));
  await saved.close();
});
