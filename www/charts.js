// Thin helpers over uPlot (bundled from npm by scripts/mnist-asset.mjs): a chart card with a
// title, a plot, an HTML legend (textContent only) and a PNG export, plus the colour-blind
// safe Okabe–Ito palette. uPlot wants every series on one x array: `align` builds it.

import uPlot from "./vendor/uPlot.min.js";
import { OPTIMIZERS } from "./state.js";

/** Okabe & Ito (2008) colours, the i-th for the engine's i-th optimizer (schema order; past
 * the last, the colours again but black, the baseline's). */
export const PALETTE = ["#000000", "#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
  "#8C7A00"]; // the last: Okabe–Ito yellow, darkened to be seen on white
export const colorOf = (opt) => {
  const i = OPTIMIZERS.findIndex((o) => o.name === opt);
  return i < 0 ? "#666666" : PALETTE[i < PALETTE.length ? i : 1 + ((i - 1) % (PALETTE.length - 1))];
};
/** Dash patterns told apart without colour: seeds, overlays, pruned vs dense. */
export const DASHES = [[], [6, 3], [2, 3], [8, 3, 2, 3]];

/**
 * Puts series given as (xs, ys) pairs on one sorted x array, null where a series has no point.
 * Returns [xs, ys1, ys2, …] as uPlot wants.
 */
export function align(pairs) {
  const xs = [...new Set(pairs.flatMap(([x]) => x))].filter((x) => typeof x === "number").sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const out = [xs];
  for (const [x, y] of pairs) {
    const col = new Array(xs.length).fill(null);
    x.forEach((xi, i) => {
      if (index.has(xi) && typeof y[i] === "number" && Number.isFinite(y[i])) col[index.get(xi)] = y[i];
    });
    out.push(col);
  }
  return out;
}

/** An axis `values` function from a per-tick formatter (uPlot passes null for skipped ticks). */
const fmt = (f) => (f ? (u, v) => v.map((x) => (x === null ? "" : f(x))) : undefined);

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

/** A chart card inside `host` (a <figure>): title, plot, legend, "PNG" button. */
export class Chart {
  /**
   * opts: { title, id, height (px, or a function of the width), x: {label, fmt, distr, fwd, bwd, splits}, y: {label, fmt, log, range} }
   */
  constructor(host, opts) {
    this.opts = opts;
    this.host = host;
    host.classList.add("chart");
    host.replaceChildren();
    const head = el("div", "chart-head");
    this.caption = el("figcaption", "", opts.title);
    this.pngButton = el("button", "small", "PNG");
    this.pngButton.type = "button";
    this.pngButton.setAttribute("aria-label", `Download “${opts.title}” as PNG`);
    this.pngButton.addEventListener("click", () => this.downloadPNG());
    head.append(this.caption, this.pngButton);
    this.plot = el("div", "plot");
    this.plot.setAttribute("role", "img");
    this.plot.setAttribute("aria-label", `${opts.title}; the numbers are in the table and the exports.`);
    this.empty = el("p", "empty", opts.empty ?? "Nothing to show yet.");
    this.legend = el("ul", "legend");
    host.append(head, this.plot, this.empty, this.legend);
    this.u = null;
    this.signature = "";
    this.lastLegend = [];
    this.width = null; // the host's width as last laid out (read where layout is fresh)
    new ResizeObserver(() => {
      this.width = host.clientWidth;
      this.resize();
    }).observe(host);
  }

  size() {
    // The observed width: reading clientWidth here would force a layout of the whole page
    // (for every chart drawn while runs report in).
    const w = Math.max(240, Math.floor((this.width ?? this.host.clientWidth) || 480));
    const h = typeof this.opts.height === "function" ? this.opts.height(w) : this.opts.height;
    return { width: w, height: h ?? Math.round(Math.min(320, Math.max(180, w * 0.5))) };
  }

  resize() {
    if (!this.u) return;
    const s = this.size();
    if (s.width !== this.u.width) this.u.setSize(s);
  }

  /**
   * data: [xs, ...ys]; series: [{label, color, dash, width, points, step, legend=false to hide,
   * fill}]; bands: [{upper, lower, color}] as series indices (1-based like uPlot).
   */
  set(data, series, bands = []) {
    const hasData = data.length > 1 && data[0].length > 0;
    this.empty.hidden = hasData;
    this.plot.hidden = !hasData;
    this.pngButton.disabled = !hasData;
    this.renderLegend(hasData ? series : []);
    if (!hasData) {
      this.u?.destroy();
      this.u = null;
      this.signature = "";
      return;
    }
    const sig = JSON.stringify([series, bands, this.opts.x.splits ? data[0] : null]);
    if (this.u && sig === this.signature) {
      this.u.setData(data);
      return;
    }
    this.u?.destroy();
    this.signature = sig;
    const { x, y } = this.opts;
    const axisFont = "12px system-ui, sans-serif";
    const scales = { x: { time: false }, y: {} };
    if (x.distr) Object.assign(scales.x, { distr: x.distr, fwd: x.fwd, bwd: x.bwd });
    if (x.range) scales.x.range = x.range;
    if (y.log) scales.y.distr = 3;
    if (y.range) scales.y.range = y.range;
    this.u = new uPlot({
      ...this.size(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales,
      axes: [
        { label: x.label, font: axisFont, labelFont: axisFont, values: fmt(x.fmt),
          splits: x.splits ? () => data[0] : undefined,
          // uPlot keeps only powers of ten on custom (distr ≥ 3) scales unless told otherwise.
          filter: x.distr ? (u, splits) => splits : undefined },
        { label: y.label, font: axisFont, labelFont: axisFont, values: fmt(y.fmt), size: 56 },
      ],
      series: [{}, ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: s.width ?? 2,
        dash: s.dash ?? [],
        spanGaps: true,
        fill: s.fill,
        points: { show: s.points ?? false, size: 6, fill: s.color },
        paths: s.step ? uPlot.paths.stepped({ align: 1 }) : s.line === false ? () => null : undefined,
      }))],
      bands: bands.map((b) => ({ series: [b.upper, b.lower], fill: b.color })),
    }, data, this.plot);
  }

  renderLegend(series) {
    const shown = series.filter((s) => s.legend !== false);
    // Unchanged (live charts, many times a second): the DOM stays as it is.
    const sig = JSON.stringify(shown.map((s) => [s.label, s.color, s.dash]));
    if (sig === this.legendSig) return;
    this.legendSig = sig;
    this.lastLegend = shown;
    this.legend.replaceChildren(...this.lastLegend.map((s) => {
      const li = el("li");
      const sw = el("span", "swatch");
      sw.style.borderTopColor = s.color;
      sw.style.borderTopStyle = s.dash && s.dash.length ? "dashed" : "solid";
      li.append(sw, el("span", "", s.label));
      return li;
    }));
  }

  /** The chart as a PNG Blob: title, plot and legend on a white background. */
  async toPNG() {
    if (!this.u) return null;
    const plot = this.u.ctx.canvas;
    const dpr = plot.width / this.u.width;
    const line = 18 * dpr;
    const perRow = Math.max(1, Math.floor(plot.width / (170 * dpr)));
    const legendRows = Math.ceil(this.lastLegend.length / perRow);
    const c = document.createElement("canvas");
    c.width = plot.width;
    c.height = plot.height + line * (1.6 + legendRows) + 8 * dpr;
    const g = c.getContext("2d");
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, c.width, c.height);
    g.fillStyle = "#1d1d1f";
    g.font = `600 ${14 * dpr}px system-ui, sans-serif`;
    g.fillText(this.opts.title, 8 * dpr, line);
    // uPlot draws the axes and the series on this one canvas.
    g.drawImage(plot, 0, line * 1.4);
    g.font = `${12 * dpr}px system-ui, sans-serif`;
    this.lastLegend.forEach((s, i) => {
      const x = 8 * dpr + (i % perRow) * 170 * dpr;
      const y = plot.height + line * (2 + Math.floor(i / perRow));
      g.strokeStyle = s.color;
      g.lineWidth = 3 * dpr;
      g.setLineDash((s.dash ?? []).map((d) => d * dpr));
      g.beginPath();
      g.moveTo(x, y - 4 * dpr);
      g.lineTo(x + 22 * dpr, y - 4 * dpr);
      g.stroke();
      g.fillStyle = "#1d1d1f";
      g.fillText(s.label, x + 28 * dpr, y);
    });
    return new Promise((ok) => c.toBlob(ok, "image/png"));
  }

  async downloadPNG() {
    const blob = await this.toPNG();
    if (blob) download(blob, `varlab-${this.opts.id ?? "chart"}.png`);
  }
}

/** Saves a Blob as a file the browser downloads. */
export function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
