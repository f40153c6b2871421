// The page's entry module: loads the engine (the wasm module trunk builds from the Rust
// crate) and its presets, reads the state from the URL, builds the settings form, runs
// experiments through runner.js and draws what comes back. Everything shown goes in through
// textContent — nothing from the engine, the URL or a file is ever inserted as HTML.

import { fromQuery, toQuery, setField, normalise, configOf, applyConfig, adoptSchema, adoptDefaults, adoptPresets, PRESETS,
  presetById, presetState, MNIST_SETS, DATASETS } from "./state.js";
import { buildControls, syncControls, WORDS } from "./controls.js";
import { mnistFiles } from "./data.js";
import { cifarZone, cifarFiles, cifarInfo, fetchData, probeBuiltIn, builtInWords } from "./cifar.js";
import { Session, autoPoolSize, engineFiles, engineModule } from "./runner.js";
import { checkResult, describe, optimizerName, hasStats, statsInput } from "./results.js";
import { makeCharts, drawHero, drawDiff, drawTable, drawVerdicts, drawLive, drawLayer, curvesOf, layerNames, LIVE } from "./views.js";
import { DASHES, download } from "./charts.js";
import { listResults, saveResult, deleteResult, clearResults } from "./store.js";
import { whyNoWebGPU, browserAdapter } from "./webgpu.js";

const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};
const sentence = (e) => (e && e.message ? e.message : String(e));

let state = null; // read from the URL once the engine's defaults are known (main)

/** What the page exposes to its browser tests (read-only for them). */
const page = (window.__varlab = {
  done: false, // the page finished starting (engine loaded or failed)
  ready: false, // the Run button works
  state: null,
  reason: null, // null | "insecure" | "no-webgpu" | "no-adapter"
  message: null,
  run: "idle", // the session's status
  events: 0,
  runsDone: 0, // run_done events of the current session
  lastEvent: null,
  executor: null,
  adapter: null,
  result: null,
  cifar: null,
  timing: { runClicked: null, firstStep: null, finished: null }, // performance.now() of Run, the first step, the end
  pool: null, // { size, active, maxActive }: runs at once in the current session's workers
  errors: [],
});

let wasm = null;
let session = null;
let view = { result: null, source: "none" }; // the result the charts and table show
let overlays = [];
let liveRuns = new Map();
let autoPaused = false;
let charts = null;

// ---------- messages and status ----------

function setStatus(text, kind = "") {
  statusUpdate = null; // a sentence set now wins over one waiting for the next frame
  $("status-text").textContent = text;
  $("status").className = kind;
}

function showMessages(msgs, kind = "warn") {
  const ul = $("messages");
  ul.replaceChildren(...msgs.map((m) => el("li", m, kind)));
}

// ---------- state ⇄ form ⇄ URL ----------

function updateURL() {
  const q = toQuery(state);
  history.replaceState(null, "", q ? `?${q}` : location.pathname);
  // Embedded, a link opens the full page with the same settings.
  const full = toQuery({ ...state, ui: { ...state.ui, embed: false, hide: [], autoplay: false } });
  $("open-full").href = `${location.pathname}${full ? `?${full}` : ""}`;
  $("open-full").hidden = !state.ui.embed;
  showPreset();
}

// ---------- presets ----------

/** Fills the preset list from the engine's presets (hidden when there are none). */
function buildPresets() {
  const select = $("preset");
  select.replaceChildren(...PRESETS.map((p) => {
    const o = el("option", p.title);
    o.value = p.id;
    return o;
  }));
  $("presets").hidden = PRESETS.length === 0;
  select.addEventListener("change", () => choosePreset(select.value));
}

/** The chosen preset and its sentence; says so when the settings no longer match it. */
function showPreset() {
  const p = presetById(state.ui.preset);
  if (p) $("preset").value = p.id;
  const changed = p && JSON.stringify(configOf(state)) !== JSON.stringify(presetState(p.id).state.config);
  $("preset-about").textContent = p ? `${p.about}${changed ? " (The settings below differ from this preset.)" : ""}` : "";
}

/** Replaces the settings with preset `id`'s; embed, hide and autoplay stay. */
function choosePreset(id) {
  const { state: next, messages } = presetState(id);
  const { embed, hide, autoplay, workers, data } = state.ui;
  Object.assign(next.ui, { embed, hide, autoplay, workers, data });
  state = page.state = next;
  syncControls($("form"), state);
  updateURL();
  showMessages(messages);
}

function onFieldChange(key, raw) {
  const msgs = [setField(state, key, raw), ...normalise(state)].filter(Boolean);
  syncControls($("form"), state);
  updateURL();
  showMessages(msgs);
}

function applyEmbed() {
  document.body.classList.toggle("embed", state.ui.embed);
  if (state.ui.embed) $("controls").open = false;
  for (const name of state.ui.hide) {
    for (const node of document.querySelectorAll(`[data-section="${name}"], #form [data-key="${name}"]`)) {
      node.classList.add("hidden-by-embed");
    }
  }
}

// ---------- drawing ----------

/** Adds the engine's paired statistics and verdicts to a result that lacks them (merged
 * parts, imported or older files); left without them when the engine cannot say. */
function ensureStats(result) {
  if (!result || hasStats(result) || !wasm?.result_stats) return;
  try {
    const { paired, verdicts } = JSON.parse(wasm.result_stats(JSON.stringify(statsInput(result))));
    Object.assign(result, { paired, verdicts });
  } catch (e) {
    Object.assign(result, { paired: [], verdicts: [] });
    page.statsError = sentence(e);
  }
}

/** Everything drawn from `view.result`, in pieces of work that can each take a task of its
 * own (see redrawSoon): the charts and the table. */
const DRAW = [
  () => {
    page.result = view.result;
    ensureStats(view.result);
    for (const o of overlays) ensureStats(o.result);
    drawHero(charts.hero, view.result, overlays);
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

function redraw() {
  for (const piece of DRAW) piece();
}

/** A new task (not a microtask): the browser handles input in between. */
const nextTask = () => (globalThis.scheduler?.yield ? scheduler.yield() : new Promise((ok) => setTimeout(ok, 0)));
/** A new task after the next frame is rendered, so that each piece of drawing gets a frame of
 * its own; not waiting long for frames that do not come (a hidden tab or frame). */
const afterFrame = () => new Promise((ok) => {
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
function redrawSoon() {
  page.result = view.result;
  if (drawQueued) return drawing;
  drawQueued = true;
  drawing = drawing.then(async () => {
    await afterFrame();
    drawQueued = false; // a later request draws again, after this pass
    for (const piece of DRAW) {
      piece();
      await afterFrame();
    }
  }).catch((e) => page.errors.push(sentence(e)));
  return drawing;
}

function updateWeightsControls() {
  const runSel = $("weights-run");
  const atSel = $("weights-at");
  const live = session && session.hasWeights() && view.source === "live" && view.result;
  const runs = live ? view.result.runs : [];
  const keepRun = runSel.value;
  runSel.replaceChildren(...runs.map((r, i) => {
    const o = el("option", `${optimizerName(r.optimizer)} seed ${r.seed}`);
    o.value = String(i);
    return o;
  }));
  if ([...runSel.options].some((o) => o.value === keepRun)) runSel.value = keepRun;
  const sp = live ? session.config.sparsities : [];
  const keepAt = atSel.value;
  atSel.replaceChildren(el("option", "dense"), ...sp.map((s) => {
    const o = el("option", `pruned to ${+(s * 100).toFixed(1)}%`);
    o.value = String(s);
    return o;
  }));
  atSel.options[0].value = "dense";
  if ([...atSel.options].some((o) => o.value === keepAt)) atSel.value = keepAt;
  $("export-weights").disabled = runs.length === 0;
  $("export-weights").title = live ? "" : "Weights are kept only for the runs of this page's latest experiment.";
}

/** The live-chart entry of an event's run (every planned run has one from Run on, so that
 * the charts keep their series while runs start and end: only their data changes). */
function liveRun(ev) {
  const key = `${ev.optimizer}/${ev.seed}`;
  if (!liveRuns.has(key)) {
    const plan = session.plan;
    // Dashed by the seed's place among the optimizer's runs, as in the finished charts.
    const k = Math.max(0, plan.filter((r) => r.optimizer === ev.optimizer).findIndex((r) => r.seed === ev.seed));
    const many = plan.filter((r) => r.optimizer === ev.optimizer).length > 1;
    liveRuns.set(key, { label: `${optimizerName(ev.optimizer)}${many ? ` seed ${ev.seed}` : ""}`, optimizer: ev.optimizer,
      order: plan.findIndex((r) => r.optimizer === ev.optimizer && r.seed === ev.seed), dash: DASHES[k % DASHES.length],
      curves: { step: [], loss: [], train_acc: [], reg: [], test_acc: [] } });
  }
  return liveRuns.get(key);
}

const rowUpdates = new Map(); // progress row → { kind, value, text, failed } for the next frame
let statusUpdate = null; // the status sentence for the next frame (while running)
let liveDirty = new Set(); // live charts with new points
let liveQueued = false;
let liveDrawn = 0; // when live work was last done
// At most five frames a second with live work: each frame costs the browser compositing too
// (on the CPU where there is no GPU), taken from the workers when every core trains.
const LIVE_MS = 200;

function statusSoon(text) {
  statusUpdate = text;
}

/**
 * Applies the events of the last frame(s) on the next animation frame, at most every
 * LIVE_MS: progress rows, the status sentence and the live charts (every planned run, in
 * plan order: several train at once in the pool).
 */
function queueLive() {
  if (liveQueued) return;
  liveQueued = true;
  const wait = Math.max(0, LIVE_MS - (performance.now() - liveDrawn));
  setTimeout(() => requestAnimationFrame(() => {
    liveQueued = false;
    liveDrawn = performance.now();
    for (const [li, u] of rowUpdates) {
      li.dataset.kind = u.kind;
      if (u.value !== undefined) li.querySelector("progress").value = u.value;
      if (u.text !== undefined) li.querySelector(".run-detail").textContent = u.text;
      if (u.failed) li.classList.add("failed");
    }
    rowUpdates.clear();
    if (statusUpdate !== null && session?.status === "running") setStatus(statusUpdate);
    statusUpdate = null;
    // The charts have their series since Run (see run()): new points only, cheap to draw.
    const runs = [...liveRuns.values()].sort((a, b) => a.order - b.order);
    for (const name of LIVE) if (liveDirty.has(name)) drawLive(charts, runs, name);
    liveDirty.clear();
  }), wait);
}

/** "Training SGD (seed 0) on the CPU.", or with runs at once: "Training 2 runs at once on
 * the CPU: SGD seed 0, VAR seed 0." */
function trainingSentence() {
  const where = session.executor === "gpu" ? "GPU" : "CPU";
  const runs = [...session.active.keys()].sort((a, b) => a - b).map((i) => session.plan[i]);
  if (runs.length <= 1) {
    const r = runs[0] ?? page.lastEvent;
    return `Training ${optimizerName(r.optimizer)} (seed ${r.seed}) on the ${where}.`;
  }
  return `Training ${runs.length} runs at once on the ${where}: ${runs.map((r) => `${optimizerName(r.optimizer)} seed ${r.seed}`).join(", ")}.`;
}

// ---------- progress rows ----------

/** The progress row of one run (made on first use): name, bar, details. */
function runRow({ optimizer, seed }) {
  const key = `${optimizer}/${seed}`;
  let li = document.querySelector(`#run-list li[data-key="${CSS.escape(key)}"]`);
  if (!li) {
    li = el("li");
    li.dataset.key = key;
    li.dataset.kind = "waiting";
    const name = el("span", `${optimizerName(optimizer)} · seed ${seed}`, "run-name");
    const bar = el("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", `Progress of ${optimizerName(optimizer)} seed ${seed}`);
    li.append(name, bar, el("span", "waiting", "run-detail"));
    $("run-list").append(li);
  }
  return li;
}

/** Marks the next waiting run as compiling: the engine builds its pipelines on its first step. */
function markNextCompiling() {
  const next = document.querySelector('#run-list li[data-kind="waiting"]');
  if (!next) return;
  next.dataset.kind = "compile";
  next.querySelector(".run-detail").textContent = "compiling kernels…";
}

const fmtSec = (s) => (s >= 90 ? `${Math.round(s / 60)} min` : `${Math.max(0, Math.round(s))} s`);

function onEvent(ev) {
  page.events += 1;
  page.lastEvent = ev;
  if (ev.kind === "done" || !ev.optimizer) return;
  const li = runRow(ev);
  const runOf = typeof ev.run === "number" && ev.runs ? `run ${ev.run + 1} of ${ev.runs} · ` : "";
  const live = session.status === "running"; // a step that ends after Pause or Cancel says nothing more
  page.pool = { size: session.limit(), active: session.active.size, maxActive: session.maxActive };
  // The row, the status line and the charts change on the next frame (see queueLive).
  const row = (patch) => rowUpdates.set(li, { ...rowUpdates.get(li), kind: ev.kind, ...patch });
  const c = liveRun(ev).curves;
  switch (ev.kind) {
    case "compile":
      row({ text: `${runOf}compiling kernels…` });
      if (live) statusSoon(session.active.size > 1 ? trainingSentence() : "Compiling the GPU kernels…");
      break;
    case "train":
    case "eval": {
      if (page.timing.firstStep === null) page.timing.firstStep = performance.now();
      const parts = [`step ${ev.step}/${ev.steps}`, `epoch ${ev.epoch + 1}/${ev.epochs}`];
      if (typeof ev.images_per_s === "number") parts.push(`${Math.round(ev.images_per_s)} images/s`);
      if (typeof ev.eta_s === "number") parts.push(`ETA ${fmtSec(ev.eta_s)}`);
      if (typeof ev.loss === "number") parts.push(`loss ${ev.loss.toFixed(3)}`);
      if (live) statusSoon(trainingSentence());
      if (typeof ev.test_acc === "number") parts.push(`test accuracy ${(ev.test_acc * 100).toFixed(2)}%`);
      row({ value: ev.steps ? ev.step / ev.steps : 0, text: runOf + parts.join(" · ") });
      c.step.push(ev.step);
      c.loss.push(ev.loss);
      c.train_acc.push(ev.train_acc);
      c.reg.push(ev.reg);
      c.test_acc.push(ev.test_acc ?? null); // "eval": the step that ended an epoch
      for (const n of LIVE) liveDirty.add(n);
      break;
    }
    case "error":
      // A run that diverged; the experiment goes on with the next one.
      row({ text: `${runOf}stopped: ${ev.message ?? "it diverged"}`, failed: true });
      showMessages([`${optimizerName(ev.optimizer)} seed ${ev.seed}: ${ev.message ?? "the run diverged"}; the next run goes on.`]);
      break;
    case "prune":
      row({ value: 1, text: `${runOf}pruned to ${+(ev.sparsity * 100).toFixed(1)}%` +
        (typeof ev.accuracy === "number" ? `: accuracy ${(ev.accuracy * 100).toFixed(2)}%` : "") });
      if (live) statusSoon(session.active.size > 1 ? trainingSentence() : `Pruning sweep of ${optimizerName(ev.optimizer)} (seed ${ev.seed}).`);
      break;
    case "run_done":
      page.runsDone += 1;
      row({ value: 1, text: `${runOf}done` });
      if (live && session.active.size === 0 && session.queue.length > 0) {
        markNextCompiling();
        statusSoon("Compiling the kernels of the next run…");
      } else if (live && session.active.size > 0) {
        statusSoon(trainingSentence());
      }
      break;
    default:
      break;
  }
  queueLive();
}

/** The executor the engine will choose for the settings: "gpu" or "cpu". */
function expectedExecutor(config = state.config) {
  const x = config.executor;
  const software = browserAdapter && (/fallback adapter/.test(browserAdapter) || wasm.is_software_adapter_name?.(browserAdapter));
  return x === "cpu" || page.reason || (x === "auto" && software) ? "cpu" : "gpu";
}

/** The ready sentence, naming the executor Run will use (as the engine will choose it). */
function readyMessage() {
  const x = state.config.executor;
  const software = browserAdapter && (/fallback adapter/.test(browserAdapter) || wasm.is_software_adapter_name?.(browserAdapter));
  if (x === "cpu") return "Ready: press Run to train on the CPU executor (WebAssembly), as the settings ask.";
  if (page.reason) return "Ready: press Run to train on the CPU executor (WebAssembly): this browser offers no usable WebGPU.";
  if (x === "auto" && software) {
    return `Ready: press Run to train on the CPU executor (WebAssembly): the GPU adapter “${browserAdapter}” is a software rasteriser, on which the CPU is many times faster.`;
  }
  return `Ready: press Run to train on your GPU${browserAdapter ? ` (${browserAdapter})` : ""}.`;
}

/**
 * A run ended: merges the finished runs (in a task of its own), draws them and saves them.
 * Runs that end meanwhile are taken along by the pass under way (s.drawn: its promise).
 */
function onRunDone(s) {
  if (s.finishing) {
    s.finishAgain = true;
    return;
  }
  s.finishing = true;
  s.drawn = (async () => {
    try {
      do {
        s.finishAgain = false;
        await nextTask();
        if (s !== session) return;
        const result = s.result();
        view = { result, source: "live" };
        await redrawSoon();
        if (result.runs.length === 0) continue;
        try {
          await saveResult(s.id, describe(result), result);
          await nextTask();
          await refreshSaved();
        } catch (e) {
          showMessages([`Finished runs could not be saved in this browser: ${sentence(e)}`]);
        }
      } while (s.finishAgain);
    } finally {
      s.finishing = false;
    }
  })();
}

function onSessionStatus(status, message) {
  if (status === "running" && state.ui.embed && page.visible === false) {
    // An embedded figure scrolled away while it was loading: wait until it is back.
    autoPaused = true;
    session.pause();
    return;
  }
  if (["done", "cancelled", "error"].includes(status)) {
    page.timing.finished = performance.now();
    // For the tests: the end is reported once the finished runs are drawn and saved.
    const s = session;
    Promise.resolve(s.drawn).then(() => {
      if (s === session && s.status === status) page.run = status;
    });
  } else {
    page.run = status;
  }
  const busy = ["loading", "running", "paused"].includes(status);
  $("run-btn").disabled = busy || !page.ready;
  $("pause-btn").disabled = !["running", "paused"].includes(status);
  $("pause-btn").textContent = status === "paused" ? "Resume" : "Pause";
  $("cancel-btn").disabled = !busy && status !== "error";
  $("form").querySelector("fieldset").disabled = busy;
  $("preset").disabled = busy;
  $("recover").hidden = status !== "error" || !session?.recoverable;
  const many = session && session.executor === "cpu" && session.limit() > 1 ? `, up to ${session.limit()} runs at once` : "";
  const where = session?.executor ? ` on the ${session.executor === "gpu" ? `GPU (${session.adapter})` : `CPU executor${many}`}` : "";
  const text = {
    idle: "", loading: message ?? "Preparing…", running: `running${where}`,
    paused: autoPaused ? "paused while off-screen" : "paused", cancelled: "cancelled", done: "finished", error: "stopped",
  }[status];
  $("run-state").textContent = text;
  if (session?.notice && session.notice !== page.engineNotice) {
    page.engineNotice = session.notice;
    const n = $("notice");
    n.textContent = session.notice;
    n.hidden = false;
  }
  page.executor = session?.executor ?? null;
  page.adapter = session?.adapter ?? null;
  $("engine-info").textContent = page.executor ? `· executor: ${page.executor}${page.adapter ? ` · ${page.adapter}` : ""}` : "";
  if (status === "error") {
    page.errors.push(message);
    setStatus(message, "error");
    $("recover-text").textContent = `${message} The finished runs are kept; the remaining ones can continue.`;
    $("continue-gpu").hidden = page.reason !== null;
  } else if (status === "done") {
    setStatus(`Finished: ${session.result().runs.length} runs on the ${session.executor === "gpu" ? "GPU" : "CPU executor"}.`, "ok");
  } else if (status === "cancelled") {
    setStatus("Cancelled. Finished runs are kept.");
    refreshSaved().catch(() => null); // the saved record now reads "cut short"
  } else if (status === "loading") {
    setStatus(message ?? "Preparing…");
  } else if (status === "running" && page.timing.firstStep === null) {
    markNextCompiling();
    setStatus("Compiling the kernels and taking the first step…");
  }
}

// ---------- running ----------

/**
 * Runs at once on the CPU executor when the setting is automatic: one fewer than the cores,
 * and no more than a quarter of the device's memory holds (navigator.deviceMemory, 4 GB where
 * the browser does not say): each worker keeps the data files and the engine's decoded copy
 * of them (CIFAR-10: about 0.5 GB a worker).
 */
function autoWorkers(config) {
  const cifarData = config.dataset === "cifar10";
  const set = (cifarData ? cifarInfo() ?? DATASETS.cifar10 : MNIST_SETS[state.ui.mnist_files]) ?? MNIST_SETS.subset;
  const images = set.train + set.test;
  const decoded = images * (cifarData ? 3073 : 785);
  const files = set.bytes ?? decoded / 4;
  const perWorker = files + 2 * decoded + 48 * 2 ** 20;
  const budget = ((navigator.deviceMemory || 4) * 2 ** 30) / 4;
  return Math.max(1, Math.min(autoPoolSize(), Math.floor(budget / perWorker)));
}

async function loadData(config) {
  const cifarData = config.dataset === "cifar10";
  const box = $("data-progress");
  const bar = $("data-bar");
  $("data-label").textContent = cifarData ? "Loading the CIFAR-10 images…" : `Downloading the built-in MNIST ${state.ui.mnist_files} files…`;
  box.hidden = false;
  const progress = (n, total) => {
    bar.value = total ? n / total : 1;
  };
  try {
    return await (cifarData ? cifarFiles(progress) : mnistFiles(state.ui.mnist_files, progress));
  } finally {
    box.hidden = true;
  }
}

async function run() {
  if (!page.ready || (session && ["loading", "running", "paused"].includes(session.status))) return;
  page.timing.runClicked = performance.now();
  page.timing.firstStep = null;
  page.timing.finished = null;
  page.runsDone = 0;
  showMessages([]);
  let config;
  try {
    config = JSON.parse(wasm.validate_config(JSON.stringify(configOf(state))));
  } catch (e) {
    setStatus(`The settings cannot run: ${sentence(e)}`, "error");
    return;
  }
  session?.free();
  const s = new Session(wasm, config, [], { event: onEvent, runDone: onRunDone, status: onSessionStatus }, {
    engine: engineFiles(), pool: state.ui.workers ?? autoWorkers(config), executor: expectedExecutor(config),
    debug: window.__varlabDebug ?? null,
  });
  session = s;
  page.pool = { size: s.limit(), active: 0, maxActive: 0 };
  s.setStatus("loading", "Loading the data…");
  await nextTask(); // the rows in a task of their own
  if (s !== session) return;
  liveRuns = new Map();
  rowUpdates.clear();
  liveDirty.clear();
  $("run-list").replaceChildren();
  for (const r of s.plan) {
    runRow(r);
    liveRun(r);
  }
  view = { result: null, source: "live" };
  // The charts are cleared and the live charts get their series (every planned run), a piece
  // a frame, while the data loads and before the workers start: training then only adds points.
  const drawn = redrawSoon().then(async () => {
    const runs = [...liveRuns.values()].sort((a, b) => a.order - b.order);
    for (const n of LIVE) {
      await afterFrame();
      if (s === session) drawLive(charts, runs, n);
    }
  });
  try {
    s.files = await loadData(config);
  } catch (e) {
    s.setStatus("idle");
    setStatus(sentence(e), "error");
    return;
  }
  await drawn;
  if (s === session) await s.start();
}

// ---------- saved experiments ----------

/** "8 runs", or "3 of 8 runs — cut short (…)" for a saved experiment that stopped before its
 * last run (a reload or a closed tab mid-run) and is not the one running now. */
function runsText(rec) {
  const r = rec.result;
  const planned = (r.config?.optimizers?.length ?? 0) * (r.config?.seeds ?? 0);
  const live = session && session.id === rec.id && ["loading", "running", "paused"].includes(session.status);
  if (live || !(planned > r.runs.length)) return `${r.runs.length} runs`;
  return `${r.runs.length} of ${planned} runs — cut short (“Use its settings” and Run to redo it)`;
}

async function refreshSaved() {
  let records = [];
  try {
    records = await listResults();
  } catch (e) {
    showMessages([sentence(e)]);
  }
  const ul = $("saved-list");
  ul.replaceChildren(...records.map((rec) => {
    const li = el("li");
    li.dataset.id = rec.id;
    const when = new Date(rec.saved).toLocaleString();
    const show = el("button", "Show");
    show.type = "button";
    show.setAttribute("aria-label", `Show ${rec.label}`);
    show.addEventListener("click", () => {
      view = { result: rec.result, source: `saved:${rec.id}` };
      redraw();
    });
    const del = el("button", "Delete");
    del.type = "button";
    del.setAttribute("aria-label", `Delete ${rec.label}`);
    del.addEventListener("click", async () => {
      await deleteResult(rec.id);
      if (view.source === `saved:${rec.id}`) {
        view = { result: null, source: "none" };
        redraw();
      }
      await refreshSaved();
    });
    const load = el("button", "Use its settings");
    load.type = "button";
    load.setAttribute("aria-label", `Use the settings of ${rec.label}`);
    load.addEventListener("click", () => {
      const msgs = applyConfig(state, rec.result.config);
      syncControls($("form"), state);
      updateURL();
      showMessages(msgs.length ? msgs : ["Settings loaded: Run reproduces this experiment on this adapter."], msgs.length ? "warn" : "ok");
    });
    li.append(el("span", `${rec.label} · ${runsText(rec)} · ${when}`, "saved-label"), show, load, del);
    return li;
  }));
  $("delete-all").disabled = records.length === 0;
  page.saved = records.length;
  return records;
}

// ---------- exports and import ----------

async function exportAllPNG() {
  const blobs = (await Promise.all(Object.values(charts).map((c) => c.toPNG()))).filter(Boolean);
  const images = await Promise.all(blobs.map((b) => createImageBitmap(b)));
  const c = document.createElement("canvas");
  c.width = Math.max(...images.map((i) => i.width));
  c.height = images.reduce((a, i) => a + i.height, 0);
  const g = c.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, c.width, c.height);
  let y = 0;
  for (const i of images) {
    g.drawImage(i, 0, y);
    y += i.height;
  }
  c.toBlob((b) => download(b, "varlab-charts.png"), "image/png");
}

/** The engine's CSV of the result shown (the bytes the CLI's --csv writes for it). */
function exportCSV() {
  try {
    download(new Blob([wasm.results_csv(JSON.stringify(view.result))], { type: "text/csv" }), "varlab-results.csv");
  } catch (e) {
    showMessages([`The CSV cannot be written: ${sentence(e)}`]);
  }
}

async function exportWeights() {
  const i = Number($("weights-run").value);
  const at = $("weights-at").value;
  const sparsity = at === "dense" ? null : Number(at);
  const r = view.result.runs[i];
  try {
    const bytes = await session.weights(i, sparsity);
    const tag = sparsity === null ? "dense" : `pruned${+(sparsity * 100).toFixed(1)}`;
    download(new Blob([bytes], { type: "application/octet-stream" }), `varlab-${r.optimizer.replace("+", "-")}-seed${r.seed}-${tag}.safetensors`);
  } catch (e) {
    showMessages([sentence(e)]);
  }
}

async function importResult(file) {
  try {
    if (file.size > 64 * 2 ** 20) throw new Error("The file is larger than 64 MB; a results file is much smaller.");
    let obj;
    try {
      obj = JSON.parse(await file.text());
    } catch (_) {
      throw new Error("The file is not valid JSON.");
    }
    checkResult(obj);
    const name = file.name.replace(/\.json$/i, "").slice(0, 40) || "imported";
    overlays.push({ name, result: obj });
    showMessages([`Overlaid ${name}: ${describe(obj)}.`], "ok");
    redraw();
  } catch (e) {
    showMessages([`${file.name.slice(0, 60)} cannot be overlaid: ${sentence(e)}`]);
  }
}

// ---------- embed: pause off-screen ----------

/** Autoplay starts once, when the page is ready (and, embedded, when the figure is visible). */
function maybeAutoplay() {
  if (!state.ui.autoplay || page.autoplayed || !page.ready || (state.ui.embed && !page.visible)) return;
  page.autoplayed = true;
  run();
}

function watchVisibility() {
  const io = new IntersectionObserver((entries) => {
    const visible = entries.some((e) => e.isIntersecting);
    page.visible = visible;
    maybeAutoplay();
    if (!session) return;
    if (!visible && session.status === "running") {
      autoPaused = true;
      session.pause();
    } else if (visible && autoPaused) {
      autoPaused = false;
      session.resume();
    }
  });
  io.observe($("hero"));
}

// ---------- start ----------

/** The wasm exports, once trunk's loader has initialised the module. */
function wasmBindings(timeoutMs = 60000) {
  if (window.wasmBindings) return Promise.resolve(window.wasmBindings);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("The WebAssembly module did not load; reload the page or check the browser console.")),
      timeoutMs,
    );
    addEventListener("TrunkApplicationStarted", () => {
      clearTimeout(timer);
      resolve(window.wasmBindings);
    }, { once: true });
  });
}

function wire() {
  $("run-btn").addEventListener("click", run);
  $("pause-btn").addEventListener("click", () => {
    autoPaused = false;
    if (session?.status === "paused") session.resume();
    else session?.pause();
  });
  $("cancel-btn").addEventListener("click", () => session?.cancel());
  $("continue-gpu").addEventListener("click", () => session?.continueOn("gpu"));
  $("continue-cpu").addEventListener("click", () => session?.continueOn("cpu"));
  $("share-btn").addEventListener("click", async () => {
    updateURL();
    try {
      await navigator.clipboard.writeText(location.href);
      showMessages(["Link copied: it opens this page with these settings."], "ok");
    } catch (_) {
      showMessages([`Copy this link: ${location.href}`], "ok");
    }
  });
  $("layer").addEventListener("change", () => drawLayer(charts, $("layer-stats"), view.result, $("layer").value));
  $("export-json").addEventListener("click", () =>
    download(new Blob([JSON.stringify(view.result, null, 1)], { type: "application/json" }), "varlab-results.json"));
  $("export-csv").addEventListener("click", exportCSV);
  $("export-png").addEventListener("click", exportAllPNG);
  $("export-weights").addEventListener("click", exportWeights);
  $("import-file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) importResult(f);
    e.target.value = "";
  });
  $("clear-overlays").addEventListener("click", () => {
    overlays = [];
    redraw();
  });
  $("delete-all").addEventListener("click", async () => {
    await clearResults();
    if (view.source.startsWith("saved:")) {
      view = { result: null, source: "none" };
      redraw();
    }
    await refreshSaved();
  });
}

async function main() {
  // The engine's schema and default config are the page's: load the engine before reading
  // the URL.
  let engineError = null;
  const probe = probeBuiltIn(); // this build's CIFAR-10 asset, fetched beside the engine
  try {
    wasm = await wasmBindings();
    if (!wasm.config_schema) throw new Error("This build of the engine lacks config_schema; rebuild the page.");
    adoptSchema(JSON.parse(wasm.config_schema()));
    // The page opens on the engine's first preset; an older engine has only its defaults.
    if (wasm.presets) adoptPresets(JSON.parse(wasm.presets()));
    else if (wasm.default_config) adoptDefaults(JSON.parse(wasm.default_config()));
  } catch (e) {
    engineError = e;
  }
  const parsed = fromQuery(location.search);
  state = page.state = parsed.state;
  // Settings live in the query; a "#config=…" (or any "#key=value") fragment is not read.
  if (/^#[^=]*=/.test(location.hash)) {
    parsed.messages.push(`The part of the address after “#” (${location.hash.slice(0, 40)}) is not read: settings go after “?”, as Copy share link writes them (e.g. ?m=mlp&n=4).`);
  }
  page.cifarBuiltIn = await probe; // {train, test, bytes} or null
  if (page.cifarBuiltIn) WORDS.cifar10 = builtInWords();
  const say = (text) => $("messages").append(el("li", text, "warn"));
  buildControls($("form"), onFieldChange, { data: [cifarZone({ wasm: () => wasm, page, say })] });
  buildPresets();
  syncControls($("form"), state);
  applyEmbed();
  showMessages(parsed.messages);
  updateURL();
  charts = makeCharts();
  wire();
  redraw();
  if (state.ui.embed) watchVisibility();
  try {
    const why = await whyNoWebGPU();
    if (why) {
      [page.reason, page.message] = why;
      const n = $("notice");
      n.textContent = `${why[1]} varlab runs on the CPU executor (WebAssembly) instead: slower, but everything works.`;
      n.hidden = false;
    }
    page.browserAdapter = browserAdapter;
    $("engine-info").textContent = browserAdapter ? `· WebGPU adapter: ${browserAdapter}` : "";
    if (engineError) throw engineError;
    if (wasm.version) $("version").textContent = wasm.version();
    const missing = ["default_config", "validate_config", "parse_dataset", "WebExperiment", "run_plan", "merge_results", "results_csv"]
      .filter((k) => !(k in wasm));
    if (missing.length) throw new Error(`This build of the engine lacks ${missing.join(", ")}; rebuild the page.`);
    // Training runs in workers (engine-worker.js); none here means no training at all.
    if (typeof Worker === "undefined") throw new Error("This browser cannot run Web Workers, in which varlab trains; use a current Chrome, Edge, Safari or Firefox.");
    const files = engineFiles();
    if (!files) throw new Error("The page cannot find its engine files (the wasm module trunk builds); rebuild the page.");
    engineModule(files.wasm); // compiled once, ahead of Run, for every worker
    page.ready = true;
    $("run-btn").disabled = false;
    setStatus(readyMessage(), "ok");
  } catch (e) {
    page.message = sentence(e);
    setStatus(page.message, "error");
  }
  fetchData(state.ui.data);
  try {
    const saved = await refreshSaved();
    if (saved.length && !session) {
      view = { result: saved[0].result, source: `saved:${saved[0].id}` };
      redraw();
    }
  } catch (e) {
    showMessages([sentence(e)]);
  }
  page.done = true;
  document.body.dataset.state = page.ready ? "ready" : "error";
  maybeAutoplay();
}

main();
