// Export (results JSON and CSV, the charts as PNG, a run's weights as safetensors) and the
// import of a results JSON drawn beside the current result.

import { checkResult, describe, optimizerName } from "./results.js";
import { download } from "./charts.js";
import { $, el, sentence, wasm, session, view, overlays, setOverlays, charts, showMessages } from "./ctx.js";
import { redraw, redrawSoon } from "./draw.js";

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

export function updateWeightsControls() {
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
    overlays.push({ name, result: obj, origin: "imported" });
    showMessages([`Overlaid ${name}: ${describe(obj)}.`], "ok");
    await redrawSoon();
  } catch (e) {
    showMessages([`${file.name.slice(0, 60)} cannot be overlaid: ${sentence(e)}`]);
  }
}

/** The export and import controls' handlers. */
export function wireExports() {
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
    setOverlays([]);
    redraw();
  });
}
