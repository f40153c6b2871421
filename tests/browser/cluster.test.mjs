// A sweep merged from cluster jobs (`varlab plan`, one `varlab run` per planned config,
// `varlab merge`, as scripts/slurm/ runs them) loads in the page's overlay like a compare; the
// page's CSV is the engine's, byte for byte the CLI's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, buildIfMissing, serve, launch, openPage } from "./harness.mjs";

let server;
let browser;

before(async () => {
  buildIfMissing();
  server = await serve();
  browser = await launch({ webgpu: false });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test("a merged cluster sweep is overlaid on the hero chart and table", async () => {
  execFileSync("cargo", ["build", "--quiet", "--bin", "varlab"], { cwd: ROOT, stdio: "inherit" });
  const varlab = (...args) => execFileSync(join(ROOT, "target/debug/varlab"), args, { cwd: ROOT, stdio: "pipe" });
  const dir = mkdtempSync(join(tmpdir(), "varlab-merge-"));
  varlab("plan", "--model", "mlp", "--optim", "sgd,var", "--seeds", "2", "--train-size", "256", "--test-size", "64",
    "--epochs", "1", "--batch", "32", "--sparsities", "0.5,0.9", "--executor", "cpu", "--out", dir);
  for (const f of readdirSync(join(dir, "runs"))) {
    varlab("run", join(dir, "runs", f), "--out", join(dir, "results", f));
  }
  const results = readdirSync(join(dir, "results")).map((f) => join(dir, "results", f));
  const merged = join(dir, "merged.json");
  varlab("merge", ...results, "--json", merged);
  const json = JSON.parse(readFileSync(merged, "utf8"));
  assert.equal(json.jobs.length, 4);

  const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const { page } = await openPage(ctx, server.url, { timeout: 120_000 });
  await page.setInputFiles("#import-file", merged);
  await page.waitForFunction(() => document.querySelectorAll('#results-table tr[data-source="import"]').length === 2);
  const rows = await page.locator('#results-table tr[data-source="import"] th').allTextContents();
  assert.deepEqual(rows, ["merged: SGD", "merged: VAR"]);
  const var90 = json.runs.filter((r) => r.optimizer === "var").map((r) => r.sweep[1].accuracy);
  const cell = page.locator('#results-table tr[data-source="import"][data-optimizer="var"] td[data-sparsity="0.9"]');
  assert.equal(Number(await cell.getAttribute("data-mean")), (var90[0] + var90[1]) / 2);
  await ctx.close();
});

test("the page's CSV is the engine's: the CLI's bytes for the same result, the page's exported JSON as the engine writes it", async () => {
  execFileSync("cargo", ["build", "--quiet", "--bin", "varlab"], { cwd: ROOT, stdio: "inherit" });
  const dir = mkdtempSync(join(tmpdir(), "varlab-csv-"));
  const cliJson = join(dir, "cli.json");
  const cliCsv = join(dir, "cli.csv");
  execFileSync(join(ROOT, "target/debug/varlab"), ["compare", "--model", "mlp", "--optim", "sgd,var", "--train-size", "64",
    "--test-size", "32", "--epochs", "1", "--batch", "32", "--sparsities", "0.5,0.9", "--executor", "cpu",
    "--json", cliJson, "--csv", cliCsv], { cwd: ROOT, stdio: "pipe" });
  const cli = readFileSync(cliCsv, "utf8");

  const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 }, acceptDownloads: true });
  const { page, console: logs } = await openPage(ctx, `${server.url}?m=mlp&o=sgd,var&tr=256&te=128&e=1&b=32&sp=0.5,0.9&n=1&x=cpu`,
    { timeout: 120_000 });
  // The wasm's writer on the CLI's result gives the CLI's bytes.
  const csvOf = (json) => page.evaluate((j) => window.wasmBindings.results_csv(j), json);
  assert.equal(await csvOf(readFileSync(cliJson, "utf8")), cli);

  // A tiny run in the page, then its CSV and JSON exports.
  assert.equal(await page.locator("#run-btn").isEnabled(), true, await page.evaluate(() => window.__varlab.message));
  await page.click("#run-btn");
  await page.waitForFunction(() => ["done", "error", "cancelled"].includes(window.__varlab.run) && window.__varlab.events > 0,
    null, { timeout: 300_000 });
  const v = await page.evaluate(() => ({ run: window.__varlab.run, errors: window.__varlab.errors }));
  assert.equal(v.run, "done", `${v.errors.join(" / ")}\n${logs.join("\n")}`);
  const download = async (button) => {
    const [dl] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
    return readFileSync(await dl.path(), "utf8");
  };
  const csv = await download("#export-csv");
  const jsonText = await download("#export-json");
  const json = JSON.parse(jsonText);
  assert.equal(csv, await csvOf(jsonText), "the page's CSV is results_csv of its exported JSON");
  const lines = csv.trimEnd().split("\n");
  assert.equal(lines[0], cli.split("\n")[0], "the CLI's header");
  assert.equal(lines.length, 1 + json.runs.length * (1 + json.config.sparsities.length));
  // Numbers in the engine's shortest form (0.9, not 0.8999999761581421): f32 values round-trip.
  const cols = lines[0].split(",");
  const at = (row, name) => row.split(",")[cols.indexOf(name)];
  const rows = lines.slice(1);
  assert.deepEqual(rows.map((r) => at(r, "sparsity")), json.runs.flatMap(() => ["0", "0.5", "0.9"]));
  json.runs.forEach((run, i) => {
    const dense = rows[i * 3];
    const pruned = rows[i * 3 + 2];
    assert.deepEqual([at(dense, "optimizer"), at(dense, "seed")], [run.optimizer, String(run.seed)]);
    for (const [cell, want] of [[at(dense, "dense_accuracy"), run.dense_accuracy], [at(pruned, "accuracy"), run.sweep[1].accuracy]]) {
      assert.equal(Math.fround(Number(cell)), Math.fround(want), cell);
      assert.ok(cell.replace(/^0\.|\./, "").replace(/^0+/, "").length <= 9, `${cell} is not in its shortest form`);
    }
    assert.equal(at(dense, "model"), "mlp");
    assert.equal(at(dense, "epochs"), "1");
  });
  await ctx.close();
});
