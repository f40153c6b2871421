// Pure functions over the result JSON (version 1, see README): checking an imported file,
// summarising runs per optimizer (mean ± std over seeds), the CSV export and merging the
// runs of an experiment that was continued on another executor. No DOM here.

import { OPTIMIZER_NAMES } from "./state.js";

export const optimizerName = (o) => OPTIMIZER_NAMES[o] ?? String(o);

const isFrac = (x) => x === null || (typeof x === "number" && x >= 0 && x <= 1);
const isNums = (a) => Array.isArray(a) && a.every((x) => x === null || typeof x === "number");

/** Throws one sentence when `r` is not a usable result JSON; returns it otherwise. */
export function checkResult(r) {
  if (!r || typeof r !== "object" || Array.isArray(r)) throw new Error("The file is not a varlab results object.");
  if (r.version !== 1) throw new Error(`The results file has version ${String(r.version).slice(0, 10)}; this page reads version 1.`);
  if (!Array.isArray(r.runs)) throw new Error("The results file has no list of runs.");
  r.runs.forEach((run, i) => {
    if (!run || typeof run.optimizer !== "string") throw new Error(`Run ${i} of the results file names no optimizer.`);
    if (!isFrac(run.dense_accuracy)) throw new Error(`Run ${i}: dense_accuracy must be a fraction between 0 and 1.`);
    if (!Array.isArray(run.sweep)) throw new Error(`Run ${i} of the results file has no sweep list.`);
    for (const p of run.sweep) {
      if (!p || typeof p.sparsity !== "number" || !isFrac(p.accuracy) || !isFrac(p.accuracy_bn_recal ?? null)) {
        throw new Error(`Run ${i}: every sweep point needs a sparsity and an accuracy between 0 and 1.`);
      }
    }
    if (run.curves && !Object.values(run.curves).every(isNums)) throw new Error(`Run ${i}: curves must be lists of numbers.`);
  });
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
  const order = [...(result.config?.optimizers ?? [])];
  for (const r of result.runs) if (!order.includes(r.optimizer)) order.push(r.optimizer);
  const sparsities = [...new Set(result.runs.flatMap((r) => r.sweep.map((p) => p.sparsity)))].sort((a, b) => a - b);
  const rows = [];
  for (const opt of order) {
    const runs = result.runs.filter((r) => r.optimizer === opt);
    if (runs.length === 0) continue;
    const at = sparsities.map((s) => meanStd(runs.map((r) => r.sweep.find((p) => p.sparsity === s)?.[field] ?? null)));
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

const csvCell = (v) => {
  if (v === null || v === undefined) return "";
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

/** One row per optimizer × seed × sparsity. */
export function toCSV(result) {
  const head = ["optimizer", "seed", "sparsity", "actual_sparsity", "accuracy", "accuracy_bn_recal", "dense_accuracy", "psi",
    "model", "dataset", "epochs"];
  const c = result.config ?? {};
  const lines = [head.join(",")];
  for (const r of result.runs) {
    for (const p of r.sweep) {
      lines.push([r.optimizer, r.seed, p.sparsity, p.actual_sparsity, p.accuracy, p.accuracy_bn_recal, r.dense_accuracy, r.psi,
        c.model, c.dataset, c.epochs].map(csvCell).join(","));
    }
  }
  return lines.join("\n") + "\n";
}

/** The result of runs done in parts (after a device loss): the first part's config and
 * environment, every part's runs, and the executors used. */
export function mergeParts(config, parts) {
  const envs = parts.map((p) => p.environment).filter(Boolean);
  const environment = envs.length ? { ...envs[0] } : {};
  const executors = [...new Set(envs.map((e) => e.executor))];
  if (executors.length > 1) environment.executor = executors.join("+");
  return { version: 1, config, environment, runs: parts.flatMap((p) => p.runs ?? []) };
}

/** A short human label for a saved or imported result. */
export function describe(result) {
  const c = result.config ?? {};
  const opts = [...new Set(result.runs.map((r) => optimizerName(r.optimizer)))].join(", ");
  return `${c.dataset ?? "?"} · ${c.model ?? "?"} · ${opts || "no runs"} · ${c.epochs ?? "?"} epoch${c.epochs === 1 ? "" : "s"}`;
}
