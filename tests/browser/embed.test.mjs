// The page embedded in a blog post (issue 22): the figure first in a 760 × 520 frame and on a
// 360 px phone, stored results by URL (`result=`) drawn before any training and equal to the
// overlay of the same file, "Re-run live" over them, each failure of `result=` as a sentence,
// and an import of 10⁵ sweep points without a long task. Configs are tiny (an MLP, 500 images).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildIfMissing, serve, launch, screenshot } from "./harness.mjs";

const FIXTURE = readFileSync(join(import.meta.dirname, "fixtures/results-small.json"));
/** SGD and VAR, two seeds (for a verdict), an MLP on 500 images, one epoch. */
const TINY = "m=mlp&o=sgd,var&tr=500&te=200&e=1&b=50&sp=0.5,0.9&n=2";
const RUN_TIMEOUT = 300_000;

let server; // the page (dist/)
let files; // another origin: stored results, some without CORS
let browser;

/** `runs` runs of `sparsities` sweep points each: a results file of runs × sparsities points. */
function bigResult(runs, sparsities) {
  const sweep = Array.from({ length: sparsities }, (_, j) => ({ sparsity: 0.5 + (0.49 * j) / sparsities, accuracy: 0.5 }));
  return { version: 1, config: { optimizers: ["sgd", "var"] },
    runs: Array.from({ length: runs }, (_, i) => ({ optimizer: i % 2 ? "var" : "sgd", seed: i >> 1, dense_accuracy: 0.9, sweep })) };
}

/** The stored-results server: path → [status, body, CORS?]. */
function filesServer() {
  const routes = {
    "/ok/results-small.json": [200, FIXTURE, true],
    "/nocors.json": [200, FIXTURE, false],
    "/notjson.json": [200, "<html>not json</html>", true],
    "/notresult.json": [200, '{"hello": 1}', true],
    "/sparsities.json": [200, JSON.stringify(bigResult(1, 1000)), true],
    "/points.json": [200, JSON.stringify(bigResult(2001, 100)), true],
    "/runs.json": [200, JSON.stringify(bigResult(1_000_000, 0)), true],
  };
  const s = createServer((req, res) => {
    const cors = { "access-control-allow-origin": "*" };
    if (req.url.startsWith("/post?")) {
      // A blog post on another origin, holding the page in an iframe.
      const q = new URL(req.url, "http://x").searchParams;
      const src = q.get("src").replaceAll("&", "&amp;").replaceAll('"', "&quot;");
      return res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html><body style="margin:20px"><iframe id="f" src="${src}"
        width="${Number(q.get("w"))}" height="${Number(q.get("h"))}" style="border:1px solid #ccc"></iframe></body>`);
    }
    if (req.url === "/big.json") {
      // 65 MiB of a JSON string, without a length: refused while streaming.
      res.writeHead(200, { ...cors, "content-type": "application/json" });
      const chunk = Buffer.alloc(1 << 20, 0x20);
      res.write('"');
      let n = 0;
      const more = () => {
        while (n < 65) {
          n += 1;
          if (!res.write(chunk)) return res.once("drain", more);
        }
        res.end('"');
      };
      res.on("error", () => null);
      return more();
    }
    const route = routes[req.url];
    if (!route) return res.writeHead(404, cors).end("not found");
    const [status, body, withCors] = route;
    res.writeHead(status, { "content-type": "application/json", ...(withCors ? cors : {}) }).end(body);
  });
  return new Promise((ok) => s.listen(0, "127.0.0.1", () => ok({ url: `http://127.0.0.1:${s.address().port}`, close: () => s.close() })));
}

before(async () => {
  buildIfMissing();
  server = await serve();
  files = await filesServer();
  browser = await launch({ webgpu: false });
});

after(async () => {
  await browser?.close();
  await server?.close();
  files?.close();
});

/** A post-like page holding the page in an iframe of `width` × `height` CSS px; the frame. */
async function framed(query, { width = 760, height = 520 } = {}) {
  const ctx = await browser.newContext({ viewport: { width: width + 40, height: height + 200 } });
  const page = await ctx.newPage();
  await page.goto(`${files.url}/post?w=${width}&h=${height}&src=${encodeURIComponent(`${server.url}?${query}`)}`);
  const frame = await (await page.$("#f")).contentFrame();
  await frame.waitForFunction(() => window.__varlab?.done, null, { timeout: 120_000 });
  return { ctx, page, frame };
}

/** Where the hero chart and the verdicts lie in the frame's viewport, and its overflow. */
const layout = (frame) => frame.evaluate(() => {
  const box = (id) => {
    const r = document.getElementById(id).getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, h: r.height };
  };
  const s = document.scrollingElement;
  return { hero: box("hero-chart"), verdicts: box("verdicts"), verdictsShown: !document.getElementById("verdicts").hidden,
    w: innerWidth, h: innerHeight, scrollY, scrollWidth: s.scrollWidth, clientWidth: s.clientWidth,
    canvas: document.querySelectorAll("#hero-chart canvas").length };
});

function assertFigureInView(l, when) {
  const where = `${when}: ${JSON.stringify(l)}`;
  assert.equal(l.scrollY, 0, where);
  assert.ok(l.canvas === 1, `no hero chart drawn (${where})`);
  assert.ok(l.hero.top >= 0 && l.hero.left >= 0 && l.hero.bottom <= l.h && l.hero.right <= l.w, `hero chart outside the frame (${where})`);
  if (l.verdictsShown) assert.ok(l.verdicts.bottom <= l.h, `verdict below the fold (${where})`);
  assert.ok(l.scrollWidth <= l.clientWidth, `horizontal overflow (${where})`);
}

async function figureThroughARun(width, tag) {
  const { ctx, page, frame } = await framed(`embed=1&${TINY}`, { width });
  try {
    assertFigureInView(await layout(frame), "ready");
    assert.equal(await frame.locator("#run-list").isVisible(), false, "progress rows shown embedded");
    await frame.click("#run-btn");
    // During the run: at its first step, after its first finished run, and 5 s in (those that
    // come before the end: the runs are short).
    await frame.waitForFunction(() => window.__varlab.timing.firstStep !== null, null, { timeout: 60_000 });
    const seen = [];
    const during = async (when) => {
      if ((await frame.evaluate(() => window.__varlab.run)) !== "running") return;
      const l = await layout(frame);
      assertFigureInView(l, when);
      const line = await frame.locator("#progress-line").textContent();
      assert.match(line, /run \d+ of 4 · (SGD|VAR) seed \d · (\d+ %|compiling|pruning|starting|done)|\d of 4 runs done/, line);
      seen.push(when);
    };
    const clicked = Date.now();
    await during("at the first step");
    await frame.waitForFunction(() => window.__varlab.runsDone >= 1 || window.__varlab.run !== "running", null, { timeout: RUN_TIMEOUT });
    await during("after the first finished run");
    if (Date.now() - clicked < 5000) await page.waitForTimeout(5000 - (Date.now() - clicked));
    await during("5 s into the run");
    assert.ok(seen.length > 0, "the run ended before any check during it");
    await screenshot(page, `embed-${tag}-running`);
    await frame.waitForFunction(() => ["done", "error", "cancelled"].includes(window.__varlab.run), null, { timeout: RUN_TIMEOUT });
    assert.equal(await frame.evaluate(() => window.__varlab.run), "done");
    const end = await layout(frame);
    assertFigureInView(end, "at the end");
    assert.equal(end.verdictsShown, true, "no verdict after two seeds");
    assert.match(await frame.locator("#progress-line").textContent(), /4 of 4 runs done/);
    await screenshot(page, `embed-${tag}-done`);
  } finally {
    await ctx.close();
  }
}

test("embed=1 in a 760 × 520 frame: the hero chart and verdict are in view at ready, during the run and at the end", async () => {
  await figureThroughARun(760, "760");
});

test("embed=1 at 360 px wide: the same, and nothing overflows horizontally", async () => {
  await figureThroughARun(360, "360");
});

/** The hero chart's data, its legend, the table's cells and the verdicts, prefixes removed. */
const drawn = (frame) => frame.evaluate(() => {
  const strip = (s) => s.replace(/^[^:]*: /, "");
  return {
    hero: window.__varlab.heroData,
    legend: [...document.querySelectorAll("#hero-chart .legend li")].map((li) => strip(li.textContent)),
    cells: [...document.querySelectorAll("#results-table tbody tr")].map((tr) => [strip(tr.querySelector("th").textContent),
      ...[...tr.querySelectorAll("td")].map((td) => `${td.dataset.sparsity}:${td.dataset.mean}:${td.dataset.std}:${td.textContent}`)]),
    verdicts: [...document.querySelectorAll("#verdicts li")].map((li) => strip(li.textContent)),
  };
});

test("result= draws a stored result with no Run pressed, equal to the overlay of the same file; Re-run live overlays", async () => {
  const url = `${files.url}/ok/results-small.json`;
  const { ctx, page, frame } = await framed(`embed=1&result=${encodeURIComponent(url)}`);
  try {
    const v = await frame.evaluate(() => ({ run: window.__varlab.run, stored: window.__varlab.stored, runsDone: window.__varlab.runsDone }));
    assert.equal(v.run, "idle");
    assert.deepEqual(v.stored.map((s) => [s.ok, s.error]), [[true, null]]);
    await frame.waitForFunction(() => document.querySelectorAll('#results-table tr[data-source="stored"]').length >= 2);
    assertFigureInView(await layout(frame), "stored result drawn");
    const stored = await drawn(frame);
    assert.ok(stored.verdicts.length > 0, "no verdict for the stored result");
    assert.match((await frame.locator("#hero-chart .legend").textContent()), /^stored: SGD/);
    await screenshot(page, "embed-stored");
    // The same file through "Overlay a results JSON", on a fresh page.
    const other = await framed("embed=1");
    await other.frame.setInputFiles("#import-file", { name: "results-small.json", mimeType: "application/json", buffer: FIXTURE });
    await other.frame.waitForFunction(() => document.querySelectorAll('#results-table tr[data-source="import"]').length >= 2);
    await other.frame.waitForFunction(() => window.__varlab.heroData?.[0]?.length > 0);
    assert.deepEqual(await drawn(other.frame), stored);
    await other.ctx.close();
    // Re-run live: the stored config (4 runs of 256 images) trains here, drawn over the stored runs.
    assert.equal(await frame.locator("#rerun-btn").isVisible(), true);
    await frame.click("#rerun-btn");
    await frame.waitForFunction(() => window.__varlab.run === "done", null, { timeout: RUN_TIMEOUT });
    await frame.waitForFunction(() => document.querySelectorAll('#results-table tr[data-source="current"]').length >= 2);
    const legend = await frame.locator("#hero-chart .legend li").allTextContents();
    assert.ok(legend.some((l) => l.startsWith("stored: ")) && legend.some((l) => l.startsWith("live: ")), legend.join(" | "));
    const cfg = await frame.evaluate(() => window.__varlab.state.config);
    assert.deepEqual([cfg.train_size, cfg.test_size, cfg.seeds], [256, 128, 2]);
    assertFigureInView(await layout(frame), "after Re-run live");
    await screenshot(page, "embed-stored-rerun");
  } finally {
    await ctx.close();
  }
});

test("each failure of result= is one sentence and the page stays usable", async () => {
  const cases = {
    "/missing.json": /the server answered 404/,
    "/nocors.json": /could not be fetched: the server did not answer, or does not let this page read it \(CORS\)/,
    "/notjson.json": /it is not JSON/,
    "/notresult.json": /it is not a results file this page can draw: The results file has version undefined/,
    "/big.json": /it is larger than the 64 MB a results file may have/,
    "/sparsities.json": /The file sweeps 1,000 different sparsities; this page draws at most 100\./,
    "/points.json": /The file has more than 200,000 sweep points; this page draws at most that many\./,
    "/runs.json": /The file has 1,000,000 runs; this page draws at most 10,000\./,
  };
  const query = `embed=1&${TINY}&${Object.keys(cases).map((p) => `result=${encodeURIComponent(files.url + p)}`).join("&")}`;
  const { ctx, frame } = await framed(query);
  try {
    const stored = await frame.evaluate(() => window.__varlab.stored);
    assert.equal(stored.length, 8);
    const text = await frame.locator("#messages").textContent();
    for (const [path, why] of Object.entries(cases)) {
      const s = stored.find((x) => x.url.endsWith(path));
      assert.equal(s.ok, false, path);
      assert.match(s.error, why, path);
      assert.match(s.error, /^The stored result http:\/\/127\.0\.0\.1:\d+\/\S+ cannot be shown: .*\.$/, path);
      assert.ok(text.includes(s.error), `${path}: not on the page`);
    }
    // Usable: the notes open, and a run trains.
    await frame.click("#notes-toggle");
    assert.equal(await frame.locator("#messages").isVisible(), true);
    assert.equal(await frame.locator("#rerun-btn").isVisible(), false);
    assert.equal(await frame.locator("#run-btn").isEnabled(), true);
  } finally {
    await ctx.close();
  }
});

test("importing a result of 10⁵ sweep points draws it with every main-thread task under 200 ms", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(server.url);
  await page.waitForFunction(() => window.__varlab?.done, null, { timeout: 120_000 });
  // 10 000 runs × 10 sparsities, from a file (a buffer would be copied into the page by script).
  const big = Buffer.from(JSON.stringify(bigResult(10_000, 10)));
  const path = join(mkdtempSync(join(tmpdir(), "varlab-embed-")), "sweep-100k.json");
  writeFileSync(path, big);
  await page.waitForTimeout(2000); // the page's own start is over
  await page.evaluate(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push([Math.round(e.startTime), Math.round(e.duration)]);
    }).observe({ type: "longtask" });
  });
  const t0 = Date.now();
  await page.setInputFiles("#import-file", path);
  await page.waitForFunction(() => document.querySelectorAll('#results-table tr[data-source="import"]').length === 2, null, { timeout: 60_000 });
  const ms = Date.now() - t0;
  await page.waitForTimeout(1000);
  const tasks = await page.evaluate(() => window.__longTasks);
  const cell = await page.locator('#results-table tr[data-source="import"][data-optimizer="sgd"] td[data-sparsity="0.5"]').getAttribute("data-mean");
  assert.equal(Number(cell), 0.5);
  console.log(`# 10⁵ points (${(big.length / 2 ** 20).toFixed(1)} MB): drawn in ${ms} ms; long tasks ${JSON.stringify(tasks)}`);
  assert.ok(tasks.every(([, d]) => d < 200), `a main-thread task took ${Math.max(...tasks.map(([, d]) => d))} ms`);
  await ctx.close();
});
