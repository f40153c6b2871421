// Markdown tables for RESULTS.md from `varlab … --json` result files.
//
//   node scripts/results-table.mjs [--recal] [--diff sgd] FILE.json …
//
// One row per optimizer (VAR rows carry their λψ₀, or λ, when the files differ in it; every row
// its init when the files differ in init): mean ± sample std
// over seeds of the test accuracy (%), dense and at each sparsity, and the mean ψ of the trained
// weights. `--recal` reports the BatchNorm re-calibrated accuracies. `--diff sgd` adds, for every
// other row, the paired difference to that row over the seeds both have (mean ± std of
// row − sgd, against the sgd row of the same init), its paired t and the seeds where the row is
// above, which is what a claim "above SGD by more than the seed spread" needs.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const recal = take('--recal', false);
const diffTo = take('--diff', true);
function take(flag, hasValue) {
  const i = args.indexOf(flag);
  if (i < 0) return null;
  const [, value] = args.splice(i, hasValue ? 2 : 1);
  return hasValue ? value : true;
}
if (args.length === 0) {
  console.error('usage: node scripts/results-table.mjs [--recal] [--diff LABEL] FILE.json …');
  process.exit(2);
}

const results = args.map((file) => JSON.parse(readFileSync(file, 'utf8')));
const strength = (c) => (c.lambda_psi0 != null ? `λψ₀=${c.lambda_psi0}` : `λ=${c.lambda}`);
const strengths = new Set(results.map((r) => strength(r.config)));
const initOf = (c) => c.init ?? 'kaiming-normal';
const inits = new Set(results.map((r) => initOf(r.config)));
const suffix = (c) => (inits.size > 1 ? ` (${initOf(c)})` : '');
const rows = new Map(); // label → Map(seed → run)
const groups = new Map(); // label → init suffix
let sparsities = null;
for (const result of results) {
  for (const run of result.runs) {
    const usesVar = run.optimizer.includes('var');
    const label = (usesVar && strengths.size > 1 ? `${run.optimizer} ${strength(result.config)}` : run.optimizer) + suffix(result.config);
    groups.set(label, suffix(result.config));
    if (!rows.has(label)) rows.set(label, new Map());
    rows.get(label).set(run.seed, run);
    sparsities ??= run.sweep.map((p) => p.sparsity);
  }
}

const accuracies = (run) => [
  run.dense_accuracy,
  ...run.sweep.map((p) => (recal ? p.accuracy_bn_recal ?? p.accuracy : p.accuracy)),
];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));
const cell = (xs) => `${(100 * mean(xs)).toFixed(2)} ± ${(100 * std(xs)).toFixed(2)}`;
const columns = (runs) => accuracies(runs[0]).map((_, j) => runs.map((run) => accuracies(run)[j]));

const header = ['optimizer', 'seeds', 'dense', ...sparsities.map((s) => `${+(100 * s).toFixed(1)}%`), 'ψ'];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const [label, bySeed] of rows) {
  const runs = [...bySeed.values()];
  const psi = mean(runs.map((run) => run.psi));
  console.log(`| ${label} | ${runs.length} | ${columns(runs).map(cell).join(' | ')} | ${psi.toPrecision(4)} |`);
}

if (diffTo) {
  console.log(`\nPaired difference to ${diffTo} (percentage points, same seeds; paired t, seeds above):\n`);
  console.log(`| ${['optimizer', 'seeds', ...header.slice(2, -1)].join(' | ')} |`);
  console.log(`|${header.slice(0, -1).map(() => '---').join('|')}|`);
  for (const [label, bySeed] of rows) {
    const base = rows.get(diffTo + groups.get(label));
    if (!base) throw new Error(`No rows are labelled ${diffTo + groups.get(label)}.`);
    if (bySeed === base) continue;
    const seeds = [...bySeed.keys()].filter((seed) => base.has(seed));
    if (seeds.length === 0) continue;
    const diffs = seeds.map((seed) => {
      const a = accuracies(bySeed.get(seed));
      const b = accuracies(base.get(seed));
      return a.map((x, j) => x - b[j]);
    });
    const cols = diffs[0].map((_, j) => diffs.map((d) => d[j]));
    const t = (xs) => (std(xs) > 0 ? (mean(xs) / (std(xs) / Math.sqrt(xs.length))).toFixed(1) : '—');
    const signed = (xs) => `${mean(xs) >= 0 ? '+' : '−'}${Math.abs(100 * mean(xs)).toFixed(2)} ± ${(100 * std(xs)).toFixed(2)} (t ${t(xs)}, ${xs.filter((x) => x > 0).length}/${xs.length})`;
    console.log(`| ${label} | ${seeds.length} | ${cols.map(signed).join(' | ')} |`);
  }
}
