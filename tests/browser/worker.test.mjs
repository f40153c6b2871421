// End-to-end: the engine trains in workers (www/engine-worker.js), a pool of them with the CPU
// executor. The main thread stays free (no long task while a compare trains), the pooled
// result equals the serial one, and Cancel keeps the finished runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { buildIfMissing, serve, launch, openPage, screenshot } from "./harness.mjs";

/** SGD and VAR × 2 seeds, an MLP, 512 training images, one epoch, on the CPU executor. */
const COMPARE = "m=mlp&o=sgd,var&n=2&tr=512&te=256&e=1&b=32&sp=0.5,0.9&x=cpu";
/** Longer runs (LeNet-5, 64 steps each) so that Cancel lands mid-run. */
const LONGER = "m=lenet5&o=sgd,var&n=2&tr=2048&te=256&e=1&b=32&sp=0.5,0.9&x=cpu";
const RUN_TIMEOUT = 480_000;

let server;
let browser;

before(async () => {
  buildIfMissing();
  server = await serve();
  browser = await launch({ webgpu: true });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** A page in a fresh context (its own IndexedDB), loaded with `query`. */
async function open(query) {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 }, acceptDownloads: true });
  const { page, console: logs } = await openPage(ctx, `${server.url}?${query}`, { timeout: 120_000 });
  return { ctx, page, logs };
}

const vl = (page) => page.evaluate(() => ({ ...window.__varlab, state: undefined, result: undefined }));

async function runToEnd(page, logs) {
  assert.equal(await page.locator("#run-btn").isEnabled(), true, `Run is disabled: ${(await vl(page)).message}`);
  await page.click("#run-btn");
  await page.waitForFunction(() => ["done", "error", "cancelled"].includes(window.__varlab.run) && window.__varlab.events > 0,
    null, { timeout: RUN_TIMEOUT });
  const v = await vl(page);
  assert.equal(v.run, "done", `run ended “${v.run}”: ${v.errors.join(" / ")}\n${logs.join("\n")}`);
  return v;
}

/** The result without its timing fields (the only ones that differ between two trainings). */
function untimed(result) {
  const r = JSON.parse(JSON.stringify(result));
  for (const run of r.runs) {
    delete run.timing.train_seconds;
    delete run.timing.ms_per_step;
  }
  return r;
}

/** One tiny compare with a long-task observer registered before Run; its long tasks. */
async function longTasksOfACompare(t) {
  // The automatic pool: one fewer than the cores, so the main thread keeps one.
  const { ctx, page, logs } = await open(COMPARE);
  try {
    assert.equal(await page.locator("#run-btn").isEnabled(), true, `Run is disabled: ${(await vl(page)).message}`);
    // The observer, then Run, in one script of the page's own (Playwright's click would run its
    // own checks on the page's thread, which may be long themselves).
    await page.evaluate(() => {
      window.__longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__longTasks.push({ name: e.name, start: Math.round(e.startTime), ms: Math.round(e.duration) });
      }).observe({ type: "longtask" });
      document.querySelector("#run-btn").click();
    });
    // Polled with plain evaluations: waitForFunction would install Playwright's own script.
    const deadline = Date.now() + RUN_TIMEOUT;
    while (!(await page.evaluate(() => ["done", "error", "cancelled"].includes(window.__varlab.run))) && Date.now() < deadline) {
      await new Promise((ok) => setTimeout(ok, 200));
    }
    const v = await vl(page);
    assert.equal(v.run, "done", `run ended “${v.run}”: ${v.errors.join(" / ")}\n${logs.join("\n")}`);
    await page.waitForTimeout(500); // the observer reports a task after it ended
    const long = await page.evaluate(() => window.__longTasks);
    t.diagnostic(`pool ${JSON.stringify(v.pool)} (hardwareConcurrency ${await page.evaluate(() => navigator.hardwareConcurrency)}), ` +
      `${v.events} events, ${v.runsDone} runs; long tasks: ${JSON.stringify(long)}; load average ${loadavg()[0].toFixed(2)}`);
    assert.equal(v.executor, "cpu");
    assert.equal((await page.evaluate(() => window.__varlab.result)).runs.length, 4);
    // The engine ran in workers: the page's own thread has no WebExperiment.
    assert.ok(page.workers().length >= 1, "no worker was started");
    return long;
  } finally {
    await ctx.close();
  }
}

test("a: a compare trains in workers with no long task (≥ 50 ms) on the main thread", async (t) => {
  // A long task is wall-clock time: on a machine whose cores other processes hold (a load
  // average above its cores), a task of 10–20 ms of CPU can take 50 ms. Only then is the
  // compare measured again, up to three times; on a free machine one long task fails. If the
  // machine stays that busy, the test is skipped (not passed) — unless a task took 100 ms or
  // more: a training step on the main thread took 140–320 ms, on a free machine.
  const seen = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const long = await longTasksOfACompare(t);
    if (long.length === 0) return;
    const busy = loadavg()[0] > cpus().length;
    if (!busy) assert.deepEqual(long, [], `the main thread had long tasks while the compare trained (attempt ${attempt})`);
    seen.push(...long);
    t.diagnostic(`attempt ${attempt}: ${long.length} long tasks with the machine busy (load average ${loadavg()[0].toFixed(2)} ` +
      `on ${cpus().length} cores)`);
  }
  const worst = Math.max(...seen.map((x) => x.ms));
  assert.ok(worst < 100, `a ${worst} ms task on the main thread: ${JSON.stringify(seen)}`);
  t.skip(`the machine stayed busy for three compares: long tasks of ${seen.map((x) => x.ms).join(", ")} ms, none 100 ms or more`);
});

test("b: the pooled result (2 workers) equals the serial one (1 worker) but for the timing fields", async (t) => {
  const results = {};
  for (const wk of [1, 2]) {
    const { ctx, page, logs } = await open(`${COMPARE}&wk=${wk}`);
    try {
      const started = Date.now();
      const v = await runToEnd(page, logs);
      t.diagnostic(`wk=${wk}: ${((Date.now() - started) / 1000).toFixed(1)} s, pool ${JSON.stringify(v.pool)}, ${page.workers().length} workers`);
      assert.equal(v.pool.size, wk);
      assert.equal(page.workers().length, wk);
      if (wk === 2) assert.equal(v.pool.maxActive, 2, "the pool never trained two runs at once");
      if (wk === 2) await screenshot(page, "worker-pooled-finished");
      results[wk] = await page.evaluate(() => window.__varlab.result);
      // The exported JSON is the merged result.
      const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#export-json")]);
      assert.deepEqual(JSON.parse(readFileSync(await dl.path(), "utf8")), results[wk]);
    } finally {
      await ctx.close();
    }
  }
  assert.deepEqual(results[2].runs.map((r) => `${r.optimizer}/${r.seed}`), ["sgd/0", "var/0", "sgd/1", "var/1"]);
  assert.equal(results[2].partial, undefined);
  assert.ok(results[2].paired.length > 0 && results[2].verdicts.length === 1);
  assert.deepEqual(untimed(results[2]), untimed(results[1]));
});

test("c: Cancel mid-run keeps the finished runs (shown, saved, their weights downloadable) and stops the workers", async () => {
  const { ctx, page, logs } = await open(`${LONGER}&wk=2`);
  try {
    await page.click("#run-btn");
    // Cancel as soon as a run has finished: the others are mid-run.
    const doneAtCancel = await page.evaluate(() => new Promise((ok) => {
      const timer = setInterval(() => {
        if (window.__varlab.runsDone >= 1) {
          clearInterval(timer);
          const n = window.__varlab.runsDone;
          document.querySelector("#cancel-btn").click();
          ok(n);
        }
      }, 5);
    }));
    await page.waitForFunction(() => window.__varlab.run === "cancelled", null, { timeout: 10_000 });
    assert.match(await page.locator("#status-text").textContent(), /Cancelled\. Finished runs are kept\./);
    const result = await page.evaluate(() => window.__varlab.result);
    assert.ok(result.runs.length >= doneAtCancel && result.runs.length < 4, `${result.runs.length} runs kept (${doneAtCancel} done at Cancel)\n${logs.join("\n")}`);
    for (const r of result.runs) assert.ok(r.sweep.length === 2 && typeof r.dense_accuracy === "number", `${r.optimizer}/${r.seed} is complete`);
    assert.match(result.partial, new RegExp(`^${result.runs.length} of 4 runs finished; missing: `));
    // No run goes on after Cancel.
    const events = (await vl(page)).events;
    await page.waitForTimeout(1500);
    assert.equal((await vl(page)).events, events, "events arrived after Cancel");
    assert.equal(await page.locator("#run-btn").isEnabled(), true);
    // Saved in IndexedDB with the finished runs, marked cut short.
    const saved = await page.evaluate(async () => (await import("./www/store.js")).listResults());
    assert.equal(saved.length, 1);
    assert.equal(saved[0].result.runs.length, result.runs.length);
    assert.match(await page.locator("#saved-list li").first().textContent(), new RegExp(`${result.runs.length} of 4 runs — cut short`));
    // The weights of a finished run still come from its worker.
    const [st] = await Promise.all([page.waitForEvent("download"), page.click("#export-weights")]);
    const bytes = readFileSync(await st.path());
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString("utf8"));
    assert.equal(header.__metadata__.seed, String(result.runs[0].seed));
    await screenshot(page, "worker-cancelled");
  } finally {
    await ctx.close();
  }
});
