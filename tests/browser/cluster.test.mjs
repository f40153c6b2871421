// A sweep merged from cluster jobs (`varlab plan`, one `varlab run` per planned config,
// `varlab merge`, as scripts/slurm/ runs them) loads in the page's overlay like a compare.
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
