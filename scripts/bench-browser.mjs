// The page's engine in headless Chromium, in one browser instance: builds nothing, serves
// dist/ (run `trunk build --release` first).
//  1. A compare on the CPU executor (the engine in workers): serial (one worker) against
//     pooled (`--pool` workers, one run each), wall-clock seconds from Run to the merged
//     result, and the ratio.
//  2. `varlab bench step` on the GPU executor (the page's wasm `bench_step`, WebGPU on the
//     browser's adapter: SwiftShader on a machine without a GPU).
//  3. With --tfjs (and model lenet5), instead of 2: varlab's first optimizer side by side with
//     LeNet-5 in TensorFlow.js (WebGPU, and WebGL for reference), rounds alternating, and the
//     ratios (scripts/bench-tfjs.mjs says how to install TF.js; it is not in the repository).
// Usage: node scripts/bench-browser.mjs [model] [optimizers] [batch] [steps] [rounds] [--key=value …]
//   positional: the step benchmark (default lenet5 sgd,var,sam 128 2 2)
//   --pool=N        workers of the pooled compare (default 2)
//   --rounds=N      serial/pooled pairs, alternating (default 2; the best of each is reported)
//   --query=…       the compare's page settings (default: LeNet-5, SGD and VAR × 2 seeds,
//                   2000 training and 1000 test images, 1 epoch, batch 128, CPU executor)
//   --skip-pool | --skip-gpu   leave out part 1, or 2 and 3
//   --tfjs=DIR      a node_modules folder holding @tensorflow/tfjs and tfjs-backend-webgpu
//                   4.22.0 (or TFJS=DIR); absent: part 3 is skipped with one line
//   --dist=DIR      serve DIR instead of dist/ (e.g. a saved build, to compare two builds)
import { chromium } from "playwright-core";
import { tfjsBundles, tfjsLenet } from "./bench-tfjs.mjs";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { extname, join, normalize } from "node:path";

const flags = Object.fromEntries(process.argv.slice(2).filter((a) => a.startsWith("--"))
  .map((a) => a.slice(2).split("=")).map(([k, ...v]) => [k, v.length ? v.join("=") : true]));
const [model = "lenet5", optims = "sgd,var,sam", batch = "128", steps = "2", rounds = "2"] =
  process.argv.slice(2).filter((a) => !a.startsWith("--"));
const pool = Number(flags.pool ?? 2);
const pairs = Number(flags.rounds ?? 2);
const tfjsDir = typeof flags.tfjs === "string" ? flags.tfjs : process.env.TFJS;
const dist = flags.dist ?? "dist";
const query = flags.query ?? "preset=lenet5&m=lenet5&o=sgd,var&n=2&tr=2000&te=1000&e=1&b=128&x=cpu";

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".json": "application/json" };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^([/\\])+/, "");
  // An empty page for TF.js (WebGPU needs a secure context: about:blank is not one).
  if (path === "blank.html") return res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html>");
  try {
    const body = await readFile(join(dist, path || "index.html"));
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
}).listen(0, "127.0.0.1");
await new Promise((r) => server.once("listening", r));
const base = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--enable-unsafe-webgpu"] });

/** One compare on a fresh page with `wk` workers: seconds from Run to the merged result. */
async function compare(wk) {
  const page = await browser.newPage();
  try {
    await page.goto(`${base}index.html?${query}&wk=${wk}`);
    await page.waitForFunction(() => window.__varlab?.done, null, { timeout: 120000 });
    const ready = await page.evaluate(() => window.__varlab.ready);
    if (!ready) throw new Error(await page.evaluate(() => window.__varlab.message));
    await page.evaluate(() => document.querySelector("#run-btn").click());
    await page.waitForFunction(() => ["done", "error", "cancelled"].includes(window.__varlab.run), null,
      { timeout: 1800000, polling: 250 });
    const v = await page.evaluate(() => ({ run: window.__varlab.run, errors: window.__varlab.errors, timing: window.__varlab.timing,
      pool: window.__varlab.pool, runs: window.__varlab.result?.runs?.length, executor: window.__varlab.executor }));
    if (v.run !== "done") throw new Error(`the compare ended “${v.run}”: ${v.errors.join(" / ")}`);
    return { seconds: (v.timing.finished - v.timing.runClicked) / 1000, ...v };
  } finally {
    await page.close();
  }
}

try {
  if (!flags["skip-pool"]) {
    const cores = await (async () => {
      const p = await browser.newPage();
      await p.goto(`${base}index.html`);
      const n = await p.evaluate(() => navigator.hardwareConcurrency);
      await p.close();
      return n;
    })();
    console.log(`Compare on the CPU executor in workers: ?${query}`);
    console.log(`(navigator.hardwareConcurrency ${cores}; ${cpus().length} CPUs; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")})`);
    const times = { 1: [], [pool]: [] };
    for (let i = 0; i < pairs; i++) {
      for (const wk of [1, pool]) {
        const r = await compare(wk);
        times[wk].push(r.seconds);
        console.log(`  round ${i + 1}: ${wk === 1 ? "serial" : "pooled"} (${wk} worker${wk > 1 ? "s" : ""}, at most ${r.pool.maxActive} runs at once): ` +
          `${r.seconds.toFixed(2)} s for ${r.runs} runs`);
      }
    }
    const best = (xs) => Math.min(...xs);
    const [serial, pooled] = [best(times[1]), best(times[pool])];
    console.log(`serial ${serial.toFixed(2)} s, pooled (${pool} workers) ${pooled.toFixed(2)} s: ${(serial / pooled).toFixed(2)}× faster ` +
      `(best of ${pairs}; load average now ${loadavg().map((x) => x.toFixed(2)).join(" ")})`);
  }
  if (!flags["skip-gpu"]) {
    const page = await browser.newPage();
    await page.goto(`${base}index.html`);
    await page.waitForFunction(() => window.wasmBindings, null, { timeout: 120000 });
    const benchStep = async (optims, rounds) => JSON.parse(await page.evaluate(
      (a) => window.wasmBindings.bench_step(a.model, "mnist", a.optims, a.batch, a.steps, a.rounds),
      { model, optims, batch: Number(batch), steps: Number(steps), rounds: Number(rounds) },
    ));
    const bundles = tfjsBundles(tfjsDir);
    if (bundles && model === "lenet5") {
      await sideBySide(benchStep, bundles, optims.split(",")[0]);
    } else {
      const r = await benchStep(optims, rounds);
      console.log(`${model} batch ${batch}, GPU executor in headless Chromium (${r.environment.adapter.name || "unnamed adapter"})`);
      for (const row of r.rows) {
        console.log(`${row.optimizer.padEnd(10)} ${row.ms_per_step.toFixed(1).padStart(10)} ms/step  ×SGD ${row.ratio_to_sgd?.toFixed(3) ?? "—"}`);
      }
      console.log(bundles ? "TF.js: skipped (the side by side is for lenet5)"
        : "TF.js: skipped (no --tfjs=DIR or TFJS=DIR holding @tensorflow/tfjs and tfjs-backend-webgpu; see scripts/bench-tfjs.mjs)");
    }
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}

/** Part 3: per round, varlab's `bench_step` (one measured round after its warm-up), then
 * TF.js WebGPU and WebGL, `steps` steps each; images/s medians with their range, and the
 * ratios paired by round. varlab's time is the GPU timestamps' (best of the steps), TF.js's
 * the wall clock of its steps up to the loss read back. */
async function sideBySide(benchStep, bundles, optim) {
  const n = Number(batch);
  const engines = [];
  for (const backend of ["webgpu", "webgl"]) {
    try {
      const t = await tfjsLenet(browser, `${base}blank.html`, bundles, backend, n);
      console.log(`TF.js ${t.info.backend}: LeNet-5 with ${t.info.params} parameters, warmed up`);
      engines.push({ name: `TF.js ${backend}`, run: async () => (await t.steps(Number(steps))).ms, close: t.close });
    } catch (e) {
      console.log(`TF.js ${backend}: not measured (${e.message.split("\n")[0]})`);
    }
  }
  let adapter = "";
  const varlab = async () => {
    const r = await benchStep(optim, 1);
    const a = r.environment.adapter;
    adapter = `${a.name || "an unnamed adapter"} (${a.backend}, ${a.device_type}${a.is_software ? ", software" : ""})`;
    return r.rows[0].ms_per_step;
  };
  const all = [{ name: `varlab ${optim}`, run: varlab }, ...engines];
  const ms = all.map(() => []);
  for (let round = 0; round < Number(rounds); round++) {
    for (const [i, e] of all.entries()) ms[i].push(await e.run());
    console.log(`  round ${round + 1}: ` + all.map((e, i) => `${e.name} ${(1000 * n / ms[i][round]).toFixed(1)} img/s`).join(", "));
  }
  const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const h = v.length >> 1; return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2; };
  const range = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
  console.log("(varlab: GPU timestamps where the adapter has them, best of the steps; TF.js: wall clock up to the loss read back)");
  console.log(`LeNet-5, batch ${n}, ${rounds} rounds × ${steps} steps, varlab's GPU executor on ${adapter} ` +
    `(load average now ${loadavg().map((x) => x.toFixed(2)).join(" ")}):`);
  for (const [i, e] of all.entries()) {
    const ips = ms[i].map((t) => 1000 * n / t);
    console.log(`  ${e.name.padEnd(14)} ${median(ips).toFixed(1).padStart(7)} img/s (range ${range(ips)})`);
  }
  for (const [i, e] of all.entries()) {
    if (i === 0) continue;
    const ratios = ms[i].map((t, r) => t / ms[0][r]);
    console.log(`  varlab / ${e.name}: ${median(ratios).toFixed(2)}× (per round ${range(ratios)})`);
  }
  for (const e of engines) await e.close();
}
