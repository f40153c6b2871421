// What the page draws from results: the hero chart (accuracy vs sparsity, one curve per
// optimizer, mean ± std band over seeds, imported results dashed), the paper-style table,
// live training curves, per-layer weight histograms and variance of |w| over training.
// Text goes in with textContent only.

import { Chart, align, colorOf, DASHES } from "./charts.js";
import { summarise, hasBnRecal, formatCell, optimizerName, pairedRows, pairedParts, formatPaired, lambdaSummary } from "./results.js";

const EPS = 1e-3;
// A log-of-(1 − s) sparsity axis: 90 %, 95 %, 98 %, 99 % get the room they deserve.
const fwd = (s) => -Math.log10(1 + EPS - s);
const bwd = (v) => 1 + EPS - 10 ** -v;
const pct = (d) => (x) => `${+(x * 100).toFixed(d)}%`;
const sparsityTick = (s) => (s === 0 ? "dense" : pct(1)(s));
const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};

const sparsityAxis = () => ({ label: "sparsity (share of weights removed)", fmt: sparsityTick, distr: 100, splits: true,
  fwd, bwd, range: (u, lo, hi) => [bwd(fwd(lo) - 0.08), bwd(fwd(hi) + 0.08)] });

/** Creates the page's charts in their <figure> hosts. */
export function makeCharts() {
  const $ = (id) => document.getElementById(id);
  return {
    hero: new Chart($("hero-chart"), {
      id: "accuracy-vs-sparsity", title: "Test accuracy after one-shot pruning",
      empty: "Run an experiment (or import a results file) to see accuracy against sparsity.",
      x: sparsityAxis(),
      // Embedded, lower, so that the figure and its verdict fit a 520 px frame.
      height: document.body.classList.contains("embed") ? (w) => Math.round(Math.min(270, Math.max(170, w * 0.42))) : undefined,
      // Before any run (no points): the axes from 0 to 100 %.
      y: { label: "test accuracy", fmt: pct(0), range: (u, lo, hi) => (Number.isFinite(lo) && Number.isFinite(hi)
        ? [Math.max(0, lo - 0.02), Math.min(1, hi + 0.02)] : [0, 1]) },
    }),
    diff: new Chart($("diff-chart"), {
      id: "paired-difference", title: "Paired difference to the baseline, seed by seed (points)", height: 220,
      empty: "The paired difference appears once two optimizers have finished the same seed.",
      x: sparsityAxis(), y: { label: "points", fmt: (v) => `${v > 0 ? "+" : ""}${+v.toFixed(1)}` },
    }),
    loss: new Chart($("loss-chart"), { id: "loss", title: "Training loss", x: { label: "step" }, y: { label: "loss" }, height: 200 }),
    acc: new Chart($("acc-chart"), { id: "accuracy", title: "Accuracy (train: line, test: dots)", x: { label: "step" },
      y: { label: "accuracy", fmt: pct(0), range: [0, 1] }, height: 200 }),
    reg: new Chart($("reg-chart"), { id: "regulariser", title: "Regulariser λψ", x: { label: "step" }, y: { label: "λψ" }, height: 200 }),
    hist: new Chart($("hist-chart"), { id: "weight-histogram", title: "Weight histogram (log counts)", x: { label: "weight" },
      y: { label: "count", log: true }, height: 240, empty: "Histograms appear when a run finishes." }),
    var: new Chart($("var-chart"), { id: "variance", title: "Variance of |w| over training", x: { label: "step" },
      y: { label: "Var |w|", fmt: (v) => v.toExponential(1) }, height: 240, empty: "Appears when a run finishes." }),
  };
}

/** The runs of a result with a label and a dash per seed of the same optimizer. */
function labelled(result, prefix = "") {
  const count = new Map();
  for (const r of result.runs) count.set(r.optimizer, (count.get(r.optimizer) ?? 0) + 1);
  const seen = new Map();
  return result.runs.map((r) => {
    const k = seen.get(r.optimizer) ?? 0;
    seen.set(r.optimizer, k + 1);
    const many = count.get(r.optimizer) > 1;
    return { run: r, dash: DASHES[k % DASHES.length], label: `${prefix}${optimizerName(r.optimizer)}${many ? ` seed ${r.seed}` : ""}` };
  });
}

/**
 * What the charts, the table and the verdicts draw, in order: the stored results (`result=`),
 * the current result (live or saved), the imported ones; each with the prefix its legend
 * entries and rows get ("stored: ", "live: " beside stored ones, the file's name for an
 * import), and a dash by its place (the first solid).
 */
export function sourcesOf(result, overlays) {
  const stored = overlays.filter((o) => o.origin === "stored");
  const list = [
    ...stored.map((o) => ({ name: stored.length > 1 ? `${o.name} (stored): ` : "stored: ", result: o.result, source: "stored" })),
    ...(result ? [{ name: stored.length ? "live: " : "", result, source: "current" }] : []),
    ...overlays.filter((o) => o.origin !== "stored").map((o) => ({ name: `${o.name}: `, result: o.result, source: "import" })),
  ];
  return list.map((s, i) => ({ ...s, dash: i === 0 ? [] : DASHES[1 + ((i - 1) % (DASHES.length - 1))] }));
}

/** What a chart draws: the sources (see sourcesOf), and `add(xs, ys, series)` collecting the
 * series (returns its uPlot index; x is 0) and their data. */
function chartData(result, overlays) {
  const data = { pairs: [], series: [], bands: [] };
  data.add = (xs, ys, s) => {
    data.pairs.push([xs, ys]);
    data.series.push(s);
    return data.series.length;
  };
  data.sources = sourcesOf(result, overlays);
  return data;
}

/** Hero chart: dense accuracy at sparsity 0, then each swept sparsity. With nothing to draw,
 * the axes and legend of `planned` (a config: its optimizers and sparsities), empty. */
export function drawHero(chart, result, overlays, planned = null) {
  const { pairs, series, bands, add, sources } = chartData(result, overlays);
  for (const src of sources) {
    const fields = ["accuracy", ...(hasBnRecal(src.result) ? ["accuracy_bn_recal"] : [])];
    for (const field of fields) {
      const { sparsities, rows } = summarise(src.result, field);
      const xs = [0, ...sparsities];
      for (const row of rows) {
        const cells = [row.dense, ...row.at];
        const color = colorOf(row.optimizer);
        const tag = field === "accuracy" ? "" : " (BN re-cal.)";
        const dash = field === "accuracy" ? src.dash : [2, 2];
        const label = `${src.name}${optimizerName(row.optimizer)}${tag}${row.seeds.length > 1 ? ` (${row.seeds.length} seeds, ± std)` : ""}`;
        add(xs, cells.map((c) => c?.mean ?? null), { label, color, dash, points: true });
        if (row.seeds.length > 1) {
          const hi = add(xs, cells.map((c) => (c ? c.mean + c.std : null)), { label: `${label} +std`, color: "transparent", legend: false });
          const lo = add(xs, cells.map((c) => (c ? c.mean - c.std : null)), { label: `${label} −std`, color: "transparent", legend: false });
          bands.push({ upper: hi, lower: lo, color: `${color}33` });
        }
      }
    }
  }
  if (pairs.length === 0 && planned?.optimizers?.length) {
    const xs = [0, ...(planned.sparsities ?? [])];
    for (const o of planned.optimizers) add(xs, xs.map(() => null), { label: optimizerName(o), color: colorOf(o), points: true });
  }
  chart.set(pairs.length ? align(pairs) : [[]], series, bands);
}

/** The paired differences (optimizer − baseline, per seed) against sparsity: mean ± std band. */
export function drawDiff(chart, result, overlays) {
  const { pairs, series, bands, add, sources } = chartData(result, overlays);
  const allX = new Set();
  for (const src of sources) {
    for (const row of pairedRows(src.result.paired).filter((r) => r.metric === "accuracy")) {
      const pts = [[0, row.dense], ...[...row.at].sort((a, b) => a[0] - b[0])].filter(([, p]) => p && p.n);
      if (pts.length === 0) continue;
      const xs = pts.map(([x]) => x);
      xs.forEach((x) => allX.add(x));
      const n = Math.max(...pts.map(([, p]) => p.n));
      const color = colorOf(row.optimizer);
      const label = `${src.name}${optimizerName(row.optimizer)} − ${optimizerName(row.baseline)}` +
        (n > 1 ? ` (${n} seeds, ± std)` : " (1 seed)");
      add(xs, pts.map(([, p]) => 100 * p.mean), { label, color, dash: src.dash, points: true });
      if (n > 1) {
        const hi = add(xs, pts.map(([, p]) => 100 * (p.mean + p.std)), { label: `${label} +std`, color: "transparent", legend: false });
        const lo = add(xs, pts.map(([, p]) => 100 * (p.mean - p.std)), { label: `${label} −std`, color: "transparent", legend: false });
        bands.push({ upper: hi, lower: lo, color: `${color}33` });
      }
    }
  }
  if (series.length) {
    const xs = [...allX];
    add(xs, xs.map(() => 0), { label: "no difference", color: "#9a9aa5", width: 1, legend: false });
  }
  chart.set(pairs.length ? align(pairs) : [[]], series, bands);
}

/** The paired rows of one source: "VAR − SGD" per metric, one cell per column. */
function pairedTrs(s, sparsities) {
  return pairedRows(s.result.paired).map((row) => {
    const tr = el("tr", undefined, "paired");
    tr.dataset.paired = row.optimizer;
    tr.dataset.baseline = row.baseline;
    tr.dataset.metric = row.metric;
    tr.dataset.of = s.source;
    const tag = row.metric === "accuracy" ? "" : " (BN re-cal.)";
    const th = el("th", `${s.name}${optimizerName(row.optimizer)} − ${optimizerName(row.baseline)}${tag}`);
    th.setAttribute("scope", "row");
    th.style.borderLeft = `4px dotted ${colorOf(row.optimizer)}`;
    tr.append(th);
    for (const [sp, p] of [["dense", row.dense], ...sparsities.map((x) => [x, row.at.get(Math.fround(x)) ?? null])]) {
      // Two lines: the difference, then its t and wins (the whole in the title).
      const [head, tail] = pairedParts(p);
      const td = el("td", head);
      if (tail) td.append(el("small", tail));
      td.title = formatPaired(p);
      td.dataset.sparsity = String(sp);
      if (p && p.n) Object.assign(td.dataset, { mean: String(p.mean), std: String(p.std), n: String(p.n), wins: String(p.wins) });
      if (p?.significant) td.classList.add("significant");
      tr.append(td);
    }
    return tr;
  });
}

/** The lines under the table: VAR's λ and λψ₀ per source, and how to read the paired rows. */
function tableNotes(sources, anyPaired) {
  const lines = sources.map((s) => [s, lambdaSummary(s.result)]).filter(([, l]) => l)
    .map(([s, l]) => `${s.name}VAR's strength: ${l}.`);
  if (anyPaired) {
    lines.push("Rows “A − B”: A's accuracy minus the baseline's, seed by seed, in points: mean ± std, the paired t " +
      "(with 2 or more seeds), and in how many seeds A came out above.");
  }
  return lines.map((l) => el("p", l));
}

/** The engine's verdict sentences (one per optimizer against the baseline), as list items. */
export function drawVerdicts(list, result, overlays) {
  const sources = sourcesOf(result, overlays);
  list.replaceChildren(...sources.flatMap((s) => (s.result.verdicts ?? []).map((v) => el("li", `${s.name}${v}`))));
  list.hidden = list.children.length === 0;
}

/**
 * The paper-style table: one row per optimizer (and source), one column per sparsity, then
 * the paired differences against the baseline; `notes` gets VAR's λ and λψ₀.
 */
export function drawTable(table, result, overlays, notes) {
  const sources = sourcesOf(result, overlays);
  const all = sources.flatMap((s) => ["accuracy", ...(hasBnRecal(s.result) ? ["accuracy_bn_recal"] : [])]
    .map((field) => {
      const sum = summarise(s.result, field);
      return { ...s, field, sum, column: new Map(sum.sparsities.map((sp, i) => [sp, i])) };
    }));
  const sparsities = [...new Set(all.flatMap((s) => s.sum.sparsities))].sort((a, b) => a - b);
  const thead = table.querySelector("thead");
  const tbody = table.querySelector("tbody");
  const head = el("tr");
  head.append(el("th", "optimizer"), el("th", "dense"), ...sparsities.map((s) => el("th", pct(1)(s))));
  head.querySelectorAll("th").forEach((th) => th.setAttribute("scope", "col"));
  thead.replaceChildren(...(all.length ? [head] : []));
  tbody.replaceChildren();
  let anySeeds = 1;
  for (const s of all) {
    for (const row of s.sum.rows) {
      anySeeds = Math.max(anySeeds, row.seeds.length);
      const tr = el("tr");
      tr.dataset.optimizer = row.optimizer;
      tr.dataset.source = s.source;
      tr.dataset.field = s.field;
      const th = el("th", `${s.name}${optimizerName(row.optimizer)}${s.field === "accuracy" ? "" : " (BN re-cal.)"}`);
      th.setAttribute("scope", "row");
      th.style.borderLeft = `4px solid ${colorOf(row.optimizer)}`;
      tr.append(th);
      const cells = [["dense", row.dense], ...sparsities.map((sp) => [sp, row.at[s.column.get(sp)] ?? null])];
      for (const [sp, cell] of cells) {
        const td = el("td", formatCell(cell));
        td.dataset.sparsity = String(sp);
        if (cell) {
          td.dataset.mean = String(cell.mean);
          td.dataset.std = String(cell.std);
        }
        tr.append(td);
      }
      tbody.append(tr);
    }
  }
  const paired = sources.flatMap((s) => pairedTrs(s, sparsities));
  tbody.append(...paired);
  notes?.replaceChildren(...tableNotes(sources, paired.length > 0));
  table.querySelector("caption").textContent = all.length
    ? `Test accuracy (%) by sparsity${anySeeds > 1 ? ", mean ± std over seeds" : ""}; dense = before pruning.`
    : "No results yet.";
}

/** The live charts' names, for drawLive's `only`. */
export const LIVE = ["loss", "acc", "reg"];

/** Live curves: `runs` is [{label, optimizer, dash, curves: {step, loss, train_acc, reg, test_acc}}];
 * `only`: one of LIVE, to draw that chart alone (the page spreads them over frames). */
export function drawLive(charts, runs, only = null) {
  // Runs that have not started yet: empty axes and the legend, not the empty-chart note.
  const none = runs.length > 0 && runs.every((r) => r.curves.step.length === 0);
  const line = (metric) => runs.map((r) => (none ? [[0], [null]] : [r.curves.step, r.curves[metric] ?? []]));
  const style = (r, extra = {}) => ({ label: r.label, color: colorOf(r.optimizer), dash: r.dash, width: 1.5, ...extra });
  if (!only || only === "loss") charts.loss.set(runs.length ? align(line("loss")) : [[]], runs.map((r) => style(r)));
  if (!only || only === "reg") charts.reg.set(runs.length ? align(line("reg")) : [[]], runs.map((r) => style(r)));
  if (!only || only === "acc") {
    const accPairs = [...line("train_acc"), ...line("test_acc")];
    charts.acc.set(runs.length ? align(accPairs) : [[]], [
      ...runs.map((r) => style(r)),
      ...runs.map((r) => style(r, { label: `${r.label} test`, points: true, line: false, legend: false })),
    ]);
  }
}

/** The finished runs of a result as live-chart entries. */
export const curvesOf = (result) => labelled(result).filter((x) => x.run.curves).map((x) => ({
  label: x.label, optimizer: x.run.optimizer, dash: x.dash, curves: x.run.curves,
}));

/** Layer names of a result (from its first run). */
export function layerNames(result) {
  const r = result?.runs?.[0];
  return (r?.weights?.dense ?? r?.layers ?? []).map((t) => t.name);
}

const centers = (t) => t.hist.map((_, i) => t.hist_min + ((i + 0.5) * (t.hist_max - t.hist_min)) / t.hist.length);

/** Histograms (dense solid, pruned dashed; first seed of each optimizer), Var |w| curves and
 * the layer's statistics; `only`: "hist", "var" or "stats", to draw one of them. */
export function drawLayer(charts, statsTable, result, layer, only = null) {
  const runs = result ? labelled(result) : [];
  const seen = new Set();
  const firstSeed = runs.filter((x) => !seen.has(x.run.optimizer) && seen.add(x.run.optimizer));
  if (!only || only === "hist") drawHistograms(charts, firstSeed, layer);
  if (!only || only === "var") drawVarCurves(charts, runs, layer);
  if (!only || only === "stats") drawLayerStats(statsTable, firstSeed, layer);
}

function drawHistograms(charts, firstSeed, layer) {
  const pairs = [];
  const series = [];
  let prunedAt = null;
  for (const { run } of firstSeed) {
    const dense = run.weights?.dense?.find((t) => t.name === layer);
    const pruned = run.weights?.pruned?.tensors?.find((t) => t.name === layer);
    const name = optimizerName(run.optimizer);
    const color = colorOf(run.optimizer);
    if (dense) {
      pairs.push([centers(dense), dense.hist.map((c) => (c > 0 ? c : null))]);
      series.push({ label: `${name} dense`, color, step: true, width: 1.5 });
    }
    if (pruned) {
      prunedAt = run.weights.pruned.sparsity;
      pairs.push([centers(pruned), pruned.hist.map((c) => (c > 0 ? c : null))]);
      series.push({ label: `${name} pruned ${pct(1)(prunedAt)}`, color, step: true, width: 1.5, dash: [6, 3] });
    }
  }
  charts.hist.caption.textContent = `Weights of ${layer ?? "—"} (log counts)${prunedAt !== null ? `: dense solid, pruned to ${pct(1)(prunedAt)} dashed` : ""}`;
  charts.hist.opts.title = charts.hist.caption.textContent;
  charts.hist.set(pairs.length ? align(pairs) : [[]], series);
}

function drawVarCurves(charts, runs, layer) {
  const vpairs = [];
  const vseries = [];
  for (const x of runs) {
    const l = x.run.layers?.find((t) => t.name === layer);
    if (!l || !x.run.curves) continue;
    vpairs.push([x.run.curves.step, l.var_abs]);
    vseries.push({ label: x.label, color: colorOf(x.run.optimizer), dash: x.dash, width: 1.5 });
  }
  charts.var.caption.textContent = `Variance of |w| in ${layer ?? "—"} over training`;
  charts.var.opts.title = charts.var.caption.textContent;
  charts.var.set(vpairs.length ? align(vpairs) : [[]], vseries);
}

function drawLayerStats(statsTable, firstSeed, layer) {
  const body = statsTable.querySelector("tbody");
  body.replaceChildren();
  for (const { run } of firstSeed) {
    const t = run.weights?.dense?.find((w) => w.name === layer);
    if (!t) continue;
    const tr = el("tr");
    const th = el("th", optimizerName(run.optimizer));
    th.setAttribute("scope", "row");
    tr.append(th, el("td", String(t.n)), el("td", t.var_abs.toExponential(3)), el("td", t.kurtosis.toFixed(2)),
      el("td", `${(t.frac_below_1e3 * 100).toFixed(2)}%`));
    body.append(tr);
  }
  statsTable.hidden = body.children.length === 0;
}
