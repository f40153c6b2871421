// `varlab bench step` in headless Chromium (WebGPU on the browser's adapter): builds nothing,
// serves dist/ (run `trunk build --release` first) and calls the page's wasm `bench_step`.
// Usage: node scripts/bench-browser.mjs [model] [optimizers] [batch] [steps] [rounds]
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

const [model = "lenet5", optims = "sgd,var,sam", batch = "128", steps = "2", rounds = "2"] =
  process.argv.slice(2);
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css" };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^([/\\])+/, "");
  try {
    const body = await readFile(join("dist", path || "index.html"));
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
}).listen(0, "127.0.0.1");
await new Promise((r) => server.once("listening", r));
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--enable-unsafe-webgpu"] });
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html`);
  await page.waitForFunction(() => window.wasmBindings, null, { timeout: 120000 });
  const json = await page.evaluate(
    (a) => window.wasmBindings.bench_step(a.model, "mnist", a.optims, a.batch, a.steps, a.rounds),
    { model, optims, batch: Number(batch), steps: Number(steps), rounds: Number(rounds) },
  );
  const r = JSON.parse(json);
  console.log(`${model} batch ${batch}, GPU executor in headless Chromium (${r.environment.adapter.name || "unnamed adapter"})`);
  for (const row of r.rows) {
    console.log(`${row.optimizer.padEnd(10)} ${row.ms_per_step.toFixed(1).padStart(10)} ms/step  ×SGD ${row.ratio_to_sgd?.toFixed(3) ?? "—"}`);
  }
} finally {
  await browser.close();
  server.close();
}
