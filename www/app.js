// The page's entry module: loads the engine (the wasm module trunk builds from the Rust
// crate) and its presets, reads the state from the URL, builds the settings form, runs
// experiments through runner.js and draws what comes back. Everything shown goes in through
// textContent — nothing from the engine, the URL or a file is ever inserted as HTML.
//
// The page's parts, one module each: ctx.js (shared state, status line, messages),
// settings.js (state ⇄ form ⇄ URL, presets), embed.js (embed layout, autoplay, off-screen
// pause), draw.js (charts and table, spread over frames), progress.js (progress rows, live
// curves), status.js (the session's status on the page), saved.js (saved experiments),
// exports.js (exports and the results import), cifar.js (CIFAR-10/100: dropped, built in,
// data= URLs). Here: the data,
// Run, and the start.

import { fromQuery, adoptSchema, adoptDefaults, adoptPresets, configOf, MNIST_SETS, DATASETS } from "./state.js";
import { buildControls, syncControls, WORDS } from "./controls.js";
import { mnistFiles } from "./data.js";
import { cifarZone, cifarFiles, cifarInfo, fetchData, probeBuiltIn, builtInWords } from "./cifar.js";
import { Session, autoPoolSize, engineFiles, engineModule } from "./runner.js";
import { makeCharts, drawLive, drawLayer, LIVE } from "./views.js";
import { whyNoWebGPU, browserAdapter } from "./webgpu.js";
import { $, el, sentence, page, state, setState, wasm, setWasm, session, setSession, view, setView, charts, setCharts,
  setAutoPaused, setStatus, showMessages, expectedExecutor } from "./ctx.js";
import { updateURL, buildPresets, onFieldChange } from "./settings.js";
import { applyEmbed, maybeAutoplay, watchVisibility } from "./embed.js";
import { redraw, redrawSoon, nextTask, afterFrame } from "./draw.js";
import { onEvent, startProgress, liveSeries } from "./progress.js";
import { readyMessage, onRunDone, onSessionStatus } from "./status.js";
import { refreshSaved, wireSaved } from "./saved.js";
import { wireExports } from "./exports.js";
import { loadStored, rerun } from "./stored.js";

// ---------- running ----------

/**
 * Runs at once on the CPU executor when the setting is automatic: one fewer than the cores,
 * and no more than a quarter of the device's memory holds (navigator.deviceMemory, 4 GB where
 * the browser does not say): each worker keeps the data files and the engine's decoded copy
 * of them (CIFAR-10: about 0.5 GB a worker).
 */
function autoWorkers(config) {
  const cifarData = config.dataset !== "mnist";
  const set = (cifarData ? cifarInfo() ?? DATASETS[config.dataset] : MNIST_SETS[state.ui.mnist_files]) ?? MNIST_SETS.subset;
  const images = set.train + set.test;
  const decoded = images * (cifarData ? 3073 : 785);
  const files = set.bytes ?? decoded / 4;
  const perWorker = files + 2 * decoded + 48 * 2 ** 20;
  const budget = ((navigator.deviceMemory || 4) * 2 ** 30) / 4;
  return Math.max(1, Math.min(autoPoolSize(), Math.floor(budget / perWorker)));
}

async function loadData(config) {
  const cifarData = config.dataset !== "mnist";
  const box = $("data-progress");
  const bar = $("data-bar");
  $("data-label").textContent = cifarData ? "Loading the CIFAR images…" : `Downloading the built-in MNIST ${state.ui.mnist_files} files…`;
  box.hidden = false;
  const progress = (n, total) => {
    bar.value = total ? n / total : 1;
  };
  try {
    return await (cifarData ? cifarFiles(config.dataset, progress) : mnistFiles(state.ui.mnist_files, progress));
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
  const s = setSession(new Session(wasm, config, [], { event: onEvent, runDone: onRunDone, status: onSessionStatus }, {
    engine: engineFiles(), pool: state.ui.workers ?? autoWorkers(config), executor: expectedExecutor(config),
    debug: window.__varlabDebug ?? null,
  }));
  page.pool = { size: s.limit(), active: 0, maxActive: 0 };
  s.setStatus("loading", "Loading the data…");
  await nextTask(); // the rows in a task of their own
  if (s !== session) return;
  startProgress(s);
  setView({ result: null, source: "live" });
  // The charts are cleared and the live charts get their series (every planned run), a piece
  // a frame, while the data loads and before the workers start: training then only adds points.
  const drawn = redrawSoon().then(async () => {
    const runs = liveSeries();
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
  $("rerun-btn").addEventListener("click", () => rerun(run));
  $("pause-btn").addEventListener("click", () => {
    setAutoPaused(false);
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
  wireExports();
  wireSaved();
}

async function main() {
  // The engine's schema and default config are the page's: load the engine before reading
  // the URL.
  let engineError = null;
  const probe = probeBuiltIn(); // this build's CIFAR-10 asset, fetched beside the engine
  try {
    setWasm(await wasmBindings());
    if (!wasm.config_schema) throw new Error("This build of the engine lacks config_schema; rebuild the page.");
    adoptSchema(JSON.parse(wasm.config_schema()));
    // The page opens on the engine's first preset; an older engine has only its defaults.
    if (wasm.presets) adoptPresets(JSON.parse(wasm.presets()));
    else if (wasm.default_config) adoptDefaults(JSON.parse(wasm.default_config()));
  } catch (e) {
    engineError = e;
  }
  const parsed = fromQuery(location.search);
  setState(parsed.state);
  // Settings live in the query; a "#config=…" (or any "#key=value") fragment is not read.
  if (/^#[^=]*=/.test(location.hash)) {
    parsed.messages.push(`The part of the address after “#” (${location.hash.slice(0, 40)}) is not read: settings go after “?”, as Copy share link writes them (e.g. ?m=mlp&n=4).`);
  }
  page.cifarBuiltIn = await probe; // {train, test, bytes} or null
  if (page.cifarBuiltIn) WORDS.cifar10 = builtInWords();
  const say = (text) => $("messages").append(el("li", text, "warn"));
  buildControls($("form"), onFieldChange, { data: [cifarZone({ wasm: () => wasm, page, say, dataset: () => state.config.dataset })] });
  buildPresets();
  syncControls($("form"), state);
  applyEmbed();
  showMessages(parsed.messages);
  updateURL();
  setCharts(makeCharts());
  wire();
  redraw();
  const stored = loadStored(); // drawn as each arrives, with or without a GPU
  if (state.ui.embed) watchVisibility(run);
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
    $("rerun-btn").disabled = false;
    setStatus(readyMessage(), "ok");
  } catch (e) {
    page.message = sentence(e);
    setStatus(page.message, "error");
  }
  fetchData(state.ui.data);
  try {
    const saved = await refreshSaved();
    if (saved.length && !session && state.ui.results.length === 0) {
      setView({ result: saved[0].result, source: `saved:${saved[0].id}` });
      redraw();
    }
  } catch (e) {
    showMessages([sentence(e)]);
  }
  await stored;
  page.done = true;
  document.body.dataset.state = page.ready ? "ready" : "error";
  maybeAutoplay(run);
}

main();
