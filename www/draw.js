// Drawing what the page shows (view.result and the overlays): the charts, the table, the
// verdicts and the export buttons, spread over tasks so that no task of the main thread is
// long while runs finish.

import { hasStats, statsInput, statsHead, statsRuns } from "./results.js";
import { drawHero, drawDiff, drawTable, drawVerdicts, drawLive, drawLayer, curvesOf, layerNames } from "./views.js";
import { $, el, sentence, page, state, wasm, session, view, overlays, charts } from "./ctx.js";
import { updateWeightsControls } from "./exports.js";
import { statsInWorker } from "./runner.js";

/** Adds the engine's paired statistics and verdicts to a result that lacks them (merged
 * parts, imported or older files); left without them when the engine cannot say. `json`: the
 * engine's input as JSON (statsInput's), when made already. */
export function ensureStats(result, json = null) {
  if (!result || hasStats(result) || !wasm?.result_stats) return;
  try {
    const { paired, verdicts } = JSON.parse(wasm.result_stats(json ?? JSON.stringify(statsInput(result))));
    Object.assign(result, { paired, verdicts });
  } catch (e) {
    Object.assign(result, { paired: [], verdicts: [] });
    page.statsError = sentence(e);
  }
}

/** ensureStats with the engine's input written a slice of runs a task (a file of 10⁵ sweep
 * points is 11 MB of it). */
async function ensureStatsSoon(result) {
  if (!result || hasStats(result) || !wasm?.result_stats) return;
  const STEP = 1000;
  const parts = [];
  for (let i = 0; i < result.runs.length; i += STEP) {
    parts.push(JSON.stringify(statsRuns(result.runs.slice(i, i + STEP))).slice(1, -1));
    if (result.runs.length > STEP) await nextTask();
  }
  const head = JSON.stringify(statsHead(result));
  const json = `${head.slice(0, -1)},"runs":[${parts.join(",")}]}`;
  if (result.runs.length <= STEP) return ensureStats(result, json);
  // Large: the engine works in a worker; the page's thread only reads its answer.
  try {
    const { paired, verdicts } = JSON.parse(await statsInWorker(json));
    if (!hasStats(result)) Object.assign(result, { paired, verdicts });
  } catch (e) {
    if (!hasStats(result)) Object.assign(result, { paired: [], verdicts: [] });
    page.statsError = sentence(e);
  }
}

/** Everything drawn from `view.result`, in pieces of work that can each take a task of its
 * own (see redrawSoon): the charts and the table. */
const DRAW = [
  async (soon) => {
    page.result = view.result;
    for (const r of [view.result, ...overlays.map((o) => o.result)]) {
      if (soon) await ensureStatsSoon(r);
      else ensureStats(r);
    }
  },
  () => {
    drawHero(charts.hero, view.result, overlays, state.config);
    page.heroData = charts.hero.u?.data ?? null; // for the tests
  },
  () => drawDiff(charts.diff, view.result, overlays),
  () => {
    drawTable($("results-table"), view.result, overlays, $("table-notes"));
    drawVerdicts($("verdicts"), view.result, overlays);
  },
  () => {
    if (!session || view.source !== "live") drawLive(charts, view.result ? curvesOf(view.result) : []);
  },
  () => {
    const r = view.result;
    const select = $("layer");
    const names = layerNames(r);
    const keep = select.value;
    select.replaceChildren(...names.map((n) => {
      const o = el("option", n);
      o.value = n;
      return o;
    }));
    if (names.includes(keep)) select.value = keep;
    drawLayer(charts, $("layer-stats"), r, select.value || null, "hist");
  },
  () => drawLayer(charts, $("layer-stats"), view.result, $("layer").value || null, "var"),
  () => drawLayer(charts, $("layer-stats"), view.result, $("layer").value || null, "stats"),
  () => {
    const has = Boolean(view.result && view.result.runs.length);
    $("export-json").disabled = !has;
    $("export-csv").disabled = !has;
    $("export-png").disabled = !has && overlays.length === 0;
    $("clear-overlays").disabled = overlays.length === 0;
    updateWeightsControls();
  },
];

export function redraw() {
  for (const piece of DRAW) piece();
}

/** A new task (not a microtask): the browser handles input in between. */
export const nextTask = () => (globalThis.scheduler?.yield ? scheduler.yield() : new Promise((ok) => setTimeout(ok, 0)));
/** A new task after the next frame is rendered, so that each piece of drawing gets a frame of
 * its own; not waiting long for frames that do not come (a hidden tab or frame). */
export const afterFrame = () => new Promise((ok) => {
  const timer = setTimeout(ok, 100);
  requestAnimationFrame(() => {
    clearTimeout(timer);
    setTimeout(ok, 0);
  });
});

let drawing = Promise.resolve();
let drawQueued = false;
/**
 * redraw() spread over tasks, one piece each, so that no task of the main thread is long while
 * runs finish during training; requests made while one waits are one redraw. Resolves once
 * drawn.
 */
export function redrawSoon() {
  page.result = view.result;
  if (drawQueued) return drawing;
  drawQueued = true;
  drawing = drawing.then(async () => {
    await afterFrame();
    drawQueued = false; // a later request draws again, after this pass
    for (const piece of DRAW) {
      await piece(true);
      await afterFrame();
    }
  }).catch((e) => page.errors.push(sentence(e)));
  return drawing;
}
