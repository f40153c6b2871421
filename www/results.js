// Pure functions over the result JSON (version 1, see README): checking an imported file,
// summarising runs per optimizer (mean ± std over seeds), the paired statistics against the
// baseline (computed by the engine; here only shaped for the table) and merging the runs of
// an experiment that was continued on another executor. The CSV is the engine's
// (`results_csv`). No DOM here.

import { OPTIMIZERS, OPTIMIZER_NAMES } from "./state.js";

export const optimizerName = (o) => OPTIMIZER_NAMES[o] ?? String(o);

const isFrac = (x) => x === null || (typeof x === "number" && x >= 0 && x <= 1);
const isNums = (a) => Array.isArray(a) && a.every((x) => x === null || typeof x === "number");

/** What the page draws at most of one results file: runs, sweep points, distinct sparsities
 * (the table's columns) and distinct optimizers (its rows). A file beyond them gets a
 * sentence, not a frozen tab. */
export const CAPS = { runs: 10000, points: 200000, sparsities: 100, optimizers: 32 };
const many = (n) => n.toLocaleString("en-US");

/** Throws one sentence when `r` is not a usable result JSON, or is larger than CAPS says;
 * returns it otherwise. Linear in the file's size. */
export function checkResult(r) {
  if (!r || typeof r !== "object" || Array.isArray(r)) throw new Error("The file is not a varlab results object.");
  if (r.version !== 1) throw new Error(`The results file has version ${String(r.version).slice(0, 10)}; this page reads version 1.`);
  if (!Array.isArray(r.runs)) throw new Error("The results file has no list of runs.");
  if (r.runs.length > CAPS.runs) throw new Error(`The file has ${many(r.runs.length)} runs; this page draws at most ${many(CAPS.runs)}.`);
  const sparsities = new Set();
  const optimizers = new Set();
  let points = 0;
  r.runs.forEach((run, i) => {
    if (!run || typeof run.optimizer !== "string") throw new Error(`Run ${i} of the results file names no optimizer.`);
    if (!isFrac(run.dense_accuracy)) throw new Error(`Run ${i}: dense_accuracy must be a fraction between 0 and 1.`);
    if (!Array.isArray(run.sweep)) throw new Error(`Run ${i} of the results file has no sweep list.`);
    points += run.sweep.length;
    if (points > CAPS.points) throw new Error(`The file has more than ${many(CAPS.points)} sweep points; this page draws at most that many.`);
    optimizers.add(run.optimizer);
    for (const p of run.sweep) {
      if (!p || typeof p.sparsity !== "number" || !isFrac(p.accuracy) || !isFrac(p.accuracy_bn_recal ?? null)) {
        throw new Error(`Run ${i}: every sweep point needs a sparsity and an accuracy between 0 and 1.`);
      }
      sparsities.add(p.sparsity);
    }
    if (run.curves && !Object.values(run.curves).every(isNums)) throw new Error(`Run ${i}: curves must be lists of numbers.`);
  });
  if (sparsities.size > CAPS.sparsities) {
    throw new Error(`The file sweeps ${many(sparsities.size)} different sparsities; this page draws at most ${CAPS.sparsities}.`);
  }
  if (optimizers.size > CAPS.optimizers) {
    throw new Error(`The file names ${many(optimizers.size)} optimizers; this page draws at most ${CAPS.optimizers}.`);
  }
  return r;
}

/** Mean and sample standard deviation (0 for a single value) of the non-null values. */
export function meanStd(values) {
  const v = values.filter((x) => typeof x === "number");
  if (v.length === 0) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const var_ = v.length > 1 ? v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1) : 0;
  return { mean, std: Math.sqrt(var_), n: v.length };
}

/**
 * Per optimizer (in the config's order, then any others): dense accuracy and accuracy at each
 * sparsity, as { mean, std, n } over seeds. `field` is "accuracy" or "accuracy_bn_recal".
 */
export function summarise(result, field = "accuracy") {
  let cache = summaries.get(result);
  if (!cache || cache.runs !== result.runs || cache.n !== result.runs.length) {
    cache = { runs: result.runs, n: result.runs.length };
    summaries.set(result, cache);
  }
  cache[field] ??= summariseNow(result, field);
  return cache[field];
}

/** Summaries by result (a result drawn by the hero chart and the table is summarised once;
 * a live result that gained runs is summarised again). */
const summaries = new WeakMap();

function summariseNow(result, field) {
  const groups = new Map((result.config?.optimizers ?? []).map((o) => [o, []]));
  const found = new Set();
  for (const r of result.runs) {
    if (!groups.has(r.optimizer)) groups.set(r.optimizer, []);
    groups.get(r.optimizer).push(r);
    for (const p of r.sweep) found.add(p.sparsity);
  }
  const sparsities = [...found].sort((a, b) => a - b);
  const column = new Map(sparsities.map((s, i) => [s, i]));
  const last = new Array(sparsities.length).fill(null); // the run a column last took a point of
  const rows = [];
  for (const [opt, runs] of groups) {
    if (runs.length === 0) continue;
    // Per sparsity, each run's first point there: one pass over the points.
    const cols = sparsities.map(() => []);
    for (const r of runs) {
      for (const p of r.sweep) {
        const c = column.get(p.sparsity);
        if (last[c] === r) continue;
        last[c] = r;
        cols[c].push(p[field] ?? null);
      }
    }
    const at = cols.map(meanStd);
    if (field !== "accuracy" && at.every((x) => x === null)) continue;
    rows.push({ optimizer: opt, seeds: runs.map((r) => r.seed), dense: meanStd(runs.map((r) => r.dense_accuracy)), at });
  }
  return { sparsities, rows };
}

/** True when any run has accuracies after BN re-calibration. */
export const hasBnRecal = (result) => result.runs.some((r) => r.sweep.some((p) => typeof p.accuracy_bn_recal === "number"));

/** "97.12" or "97.12 ± 0.31": a fraction as a percentage with two decimals. */
export function formatCell(cell) {
  if (!cell) return "—";
  const pct = (x) => (x * 100).toFixed(2);
  return cell.n > 1 ? `${pct(cell.mean)} ± ${pct(cell.std)}` : pct(cell.mean);
}

/** The result of runs done in parts (after a device loss): the first part's config (the
 * engine's, with the λ it derived from λψ₀; the page's `config` when no part has one) and
 * environment, every part's runs, and the executors used. */
export function mergeParts(config, parts) {
  config = parts.find((p) => p.config)?.config ?? config;
  const envs = parts.map((p) => p.environment).filter(Boolean);
  const environment = envs.length ? { ...envs[0] } : {};
  const executors = [...new Set(envs.map((e) => e.executor))];
  if (executors.length > 1) environment.executor = executors.join("+");
  const merged = { version: 1, config, environment, runs: parts.flatMap((p) => p.runs ?? []) };
  const partial = parts.map((p) => p.partial).filter(Boolean);
  if (partial.length) merged.partial = partial.join(" ");
  // One part: the engine's paired statistics hold for the whole; several: see statsInput.
  if (parts.length === 1 && Array.isArray(parts[0].paired)) {
    Object.assign(merged, { paired: parts[0].paired, verdicts: parts[0].verdicts ?? [] });
  }
  return merged;
}

/** True when a result carries the engine's paired statistics and verdicts. */
export const hasStats = (r) => Array.isArray(r?.paired) && Array.isArray(r?.verdicts);

/**
 * What the engine's `result_stats` needs of a result, in the shape its parser requires even
 * where older files lack fields: per run the optimizer, seed, accuracies and whether it
 * diverged (no curves, histograms or timings).
 */
export function statsInput(result) {
  return { ...statsHead(result), runs: statsRuns(result.runs) };
}

/** statsInput without its runs. */
export const statsHead = (result) => ({
  version: 1,
  config: { optimizers: result.config?.optimizers ?? [...new Set(result.runs.map((r) => r.optimizer))],
    sparsities: result.config?.sparsities ?? [...new Set(result.runs.flatMap((r) => r.sweep.map((p) => p.sparsity)))] },
  environment: { executor: "", adapter: "", version: "", notice: null },
});

/** statsInput's runs. */
export function statsRuns(runs) {
  const num = (x) => (typeof x === "number" && Number.isFinite(x) ? x : 0);
  return runs.map((r) => ({
    optimizer: r.optimizer, seed: num(r.seed), dense_accuracy: num(r.dense_accuracy), dense_loss: 0, psi: 0,
    prunable_weights: 0, total_params: 0,
    sweep: r.sweep.map((p) => ({ sparsity: p.sparsity, actual_sparsity: num(p.actual_sparsity), accuracy: num(p.accuracy),
      accuracy_bn_recal: typeof p.accuracy_bn_recal === "number" ? p.accuracy_bn_recal : null })),
    curves: { step: [], loss: [], train_acc: [], reg: [], epoch: [], test_acc: [] }, layers: [],
    weights: { dense: [], pruned: null }, timing: { train_seconds: 0, ms_per_step: 0 },
    diverged: typeof r.diverged === "string" ? r.diverged : null,
  }));
}

/**
 * The paired statistics as table rows: one per optimizer and metric, with its baseline, the
 * dense entry and one entry per sparsity ({n, mean, std, t, wins, losses, significant}) in
 * `at`, keyed by `Math.fround(sparsity)`: the engine's sparsities are f32, written as 0.9 by
 * one export and as 0.8999999761581421 by another.
 */
export function pairedRows(paired) {
  const rows = [];
  for (const p of paired ?? []) {
    let row = rows.find((r) => r.optimizer === p.optimizer && r.metric === p.metric);
    if (!row) rows.push((row = { optimizer: p.optimizer, baseline: p.baseline, metric: p.metric, dense: null, at: new Map() }));
    if (p.sparsity === null || p.sparsity === undefined) row.dense = p;
    else row.at.set(Math.fround(p.sparsity), p);
  }
  return rows;
}

/** "+3.4" / "−0.2" / "0.0": one decimal, with a typographic minus. */
const signed = (x) => {
  const s = Math.abs(x).toFixed(1);
  return Number(s) === 0 ? s : `${x > 0 ? "+" : "−"}${s}`;
};

/**
 * A paired difference as ["+3.4 ± 3.3", "t = 3.0 · 7/8"]: mean ± std in points, then the
 * paired t (with 2 or more seeds) and the seeds where the optimizer is above / all seeds.
 */
export function pairedParts(p) {
  if (!p || !p.n) return ["—", ""];
  const mean = signed(100 * p.mean);
  const rest = typeof p.t === "number" ? [`t = ${signed(p.t)}`] : [];
  return [p.n > 1 ? `${mean} ± ${(100 * p.std).toFixed(1)}` : mean, [...rest, `${p.wins}/${p.n}`].join(" · ")];
}

/** "+3.4 ± 3.3 · t = +3.0 · 7/8" (see pairedParts). */
export const formatPaired = (p) => pairedParts(p).filter(Boolean).join(" · ");

/**
 * "λ = 7.1e-5 (λψ₀ = 1.40)": VAR's strength in a result, from its config's λ (the derived one
 * when λψ₀ was set) and its runs' `lambda_psi0`; null when no run used VAR.
 */
export function lambdaSummary(result) {
  const runs = result?.runs ?? [];
  const usesVar = (o) => OPTIMIZERS.some((x) => x.name === o && x.params.includes("lambda"));
  if (!runs.some((r) => usesVar(r.optimizer))) return null;
  const lam = typeof result.config?.lambda === "number" ? `λ = ${result.config.lambda.toExponential(1)}` : "λ = ?";
  const lp = runs.filter((r) => usesVar(r.optimizer) && typeof r.lambda_psi0 === "number" && r.lambda_psi0 > 0)
    .map((r) => r.lambda_psi0.toFixed(2));
  if (lp.length === 0) return lam;
  const lo = lp.reduce((a, b) => (Number(b) < Number(a) ? b : a));
  const hi = lp.reduce((a, b) => (Number(b) > Number(a) ? b : a));
  return `${lam} (λψ₀ = ${lo === hi ? lo : `${lo}–${hi}`})`;
}

/** A short human label for a saved or imported result. */
export function describe(result) {
  const c = result.config ?? {};
  const opts = [...new Set(result.runs.map((r) => optimizerName(r.optimizer)))].join(", ");
  return `${c.dataset ?? "?"} · ${c.model ?? "?"} · ${opts || "no runs"} · ${c.epochs ?? "?"} epoch${c.epochs === 1 ? "" : "s"}`;
}
