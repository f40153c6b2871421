// Progress while an experiment trains: one row per planned run (name, bar, details), the
// status sentence and the live training curves, applied at most five times a second.

import { optimizerName } from "./results.js";
import { drawLive, LIVE } from "./views.js";
import { DASHES } from "./charts.js";
import { $, el, page, session, charts, setStatus, statusSoon, takeStatus, showMessages } from "./ctx.js";

let liveRuns = new Map();

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

/** The live-chart entries of every planned run, in plan order. */
export const liveSeries = () => [...liveRuns.values()].sort((a, b) => a.order - b.order);

const rowUpdates = new Map(); // progress row → { kind, value, text, failed } for the next frame
const liveDirty = new Set(); // live charts with new points
let liveQueued = false;
let liveDrawn = 0; // when live work was last done
// At most five frames a second with live work: each frame costs the browser compositing too
// (on the CPU where there is no GPU), taken from the workers when every core trains.
const LIVE_MS = 200;

const phases = new Map(); // "optimizer/seed" → where the run is, for the one-line progress

/** A progress row and a live-chart entry for every run of session `s`'s plan. */
export function startProgress(s) {
  liveRuns = new Map();
  phases.clear();
  rowUpdates.clear();
  liveDirty.clear();
  $("run-list").replaceChildren();
  for (const r of s.plan) {
    runRow(r);
    liveRun(r);
  }
  showProgressLine();
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
    showProgressLine();
    const status = takeStatus();
    if (status !== null && session?.status === "running") setStatus(status);
    // The charts have their series since Run (see run()): new points only, cheap to draw.
    const runs = liveSeries();
    for (const name of LIVE) if (liveDirty.has(name)) drawLive(charts, runs, name);
    liveDirty.clear();
  }), wait);
}

/**
 * The progress in one line (shown embedded instead of the rows): "run 3 of 8 · VAR seed 1 ·
 * 41 %" for each run training now, or how many runs are done.
 */
export function showProgressLine() {
  const line = $("progress-line");
  if (!session) return;
  const n = session.plan.length;
  const active = [...session.active.keys()].sort((a, b) => a - b);
  const text = active.length && session.status === "running"
    ? active.map((i) => {
      const r = session.plan[i];
      return `run ${i + 1} of ${n} · ${optimizerName(r.optimizer)} seed ${r.seed} · ${phases.get(`${r.optimizer}/${r.seed}`) ?? "starting"}`;
    }).join("; ")
    : `${page.runsDone} of ${n} runs done${session.status === "paused" ? " · paused" : ""}`;
  line.textContent = text;
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
export function markNextCompiling() {
  const next = document.querySelector('#run-list li[data-kind="waiting"]');
  if (!next) return;
  next.dataset.kind = "compile";
  next.querySelector(".run-detail").textContent = "compiling kernels…";
}

const fmtSec = (s) => (s >= 90 ? `${Math.round(s / 60)} min` : `${Math.max(0, Math.round(s))} s`);

export function onEvent(ev) {
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
  const key = `${ev.optimizer}/${ev.seed}`;
  switch (ev.kind) {
    case "compile":
      row({ text: `${runOf}compiling kernels…` });
      phases.set(key, "compiling");
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
      phases.set(key, `${Math.floor(ev.steps ? (100 * ev.step) / ev.steps : 0)} %`);
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
      phases.set(key, "pruning");
      row({ value: 1, text: `${runOf}pruned to ${+(ev.sparsity * 100).toFixed(1)}%` +
        (typeof ev.accuracy === "number" ? `: accuracy ${(ev.accuracy * 100).toFixed(2)}%` : "") });
      if (live) statusSoon(session.active.size > 1 ? trainingSentence() : `Pruning sweep of ${optimizerName(ev.optimizer)} (seed ${ev.seed}).`);
      break;
    case "run_done":
      page.runsDone += 1;
      row({ value: 1, text: `${runOf}done` });
      phases.set(key, "done");
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
