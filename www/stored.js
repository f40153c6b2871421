// Stored results by URL: `result=URL` (several: a comma list or the key repeated) names
// results JSON — what `varlab compare --json` or `varlab merge --json` writes, or the page's
// own export — fetched (same origin, or a server that allows it by CORS), read while
// streaming up to MAX_BYTES, checked like an imported file (results.js: checkResult and its
// caps) and drawn at once beside whatever trains here, before and without any training.
// Every failure is one sentence; the page stays usable.
//
// "Re-run live" trains the first stored result's config here, or — when that would take
// more than RERUN_MAX_S on this device (see estimateSeconds) — the smaller preset the file
// (`"rerun_preset": "ID"`) or the URL (`rerun=ID`) names. The live runs are drawn over the
// stored ones ("stored: …" and "live: …" in the legend).

import { checkResult, describe } from "./results.js";
import { applyConfig, presetById, OPTIMIZERS } from "./state.js";
import { syncControls } from "./controls.js";
import { autoPoolSize } from "./runner.js";
import { $, sentence, page, state, overlays, showMessages, expectedExecutor } from "./ctx.js";
import { redrawSoon } from "./draw.js";
import { updateURL, choosePreset } from "./settings.js";
import { readBody } from "./data.js";

/** The most bytes read of one stored result (a 10⁵-point result is about 6 MB). */
export const MAX_BYTES = 64 * 2 ** 20;
/** Above this estimate, "Re-run live" trains the named smaller preset instead. */
export const RERUN_MAX_S = 180;

const mb = (n) => `${(n / 2 ** 20).toFixed(n < 10 * 2 ** 20 ? 1 : 0)} MB`;

/** A short name for a URL in sentences and legends: its file name without ".json". */
export const nameOf = (url) => (decodeURIComponent(String(url).split(/[?#]/)[0].split("/").filter(Boolean).pop() ?? "")
  .replace(/\.json$/i, "").slice(0, 40) || "result");

/** The bytes of `res`'s body, refusing (and cancelling the download) past `max`. */
async function readCapped(res, max) {
  const declared = Number(res.headers.get("content-length"));
  if (declared > max) throw new Error(`it is ${mb(declared)}, above the ${mb(max)} a results file may have`);
  return readBody(res, () => {}, max, () => `it is larger than the ${mb(max)} a results file may have`);
}

/** Fetches and checks one stored result; throws one sentence (without the URL) on failure. */
export async function fetchResult(url, max = MAX_BYTES) {
  let address;
  try {
    address = new URL(url, location.href);
  } catch (_) {
    throw new Error("it is not a valid address");
  }
  if (!["http:", "https:"].includes(address.protocol)) throw new Error("only http and https addresses are read");
  let res;
  try {
    res = await fetch(address, { credentials: "omit" });
  } catch (_) {
    throw new Error("it could not be fetched: the server did not answer, or does not let this page read it (CORS)");
  }
  if (!res.ok) throw new Error(`the server answered ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`);
  const bytes = await readCapped(res, max);
  let obj;
  try {
    obj = JSON.parse(new TextDecoder().decode(bytes));
  } catch (_) {
    throw new Error("it is not JSON");
  }
  try {
    return checkResult(obj);
  } catch (e) {
    throw new Error(`it is not a results file this page can draw: ${sentence(e)}`);
  }
}

/**
 * Fetches every `result=` URL at once and draws each as it arrives; resolves when all are
 * settled. page.stored: [{url, name, ok, error}] for the tests.
 */
export async function loadStored() {
  const urls = state.ui.results ?? [];
  page.stored = urls.map((url) => ({ url, name: nameOf(url), ok: null, error: null }));
  if (urls.length === 0) return;
  const said = [];
  await Promise.all(page.stored.map(async (entry) => {
    try {
      const result = await fetchResult(entry.url);
      overlays.push({ name: entry.name, result, origin: "stored", url: entry.url });
      entry.ok = true;
      said.push(`Stored result ${entry.name}: ${describe(result)}.`);
      $("rerun-btn").hidden = false;
    } catch (e) {
      entry.ok = false;
      entry.error = `The stored result ${String(entry.url).slice(0, 80)} cannot be shown: ${sentence(e).replace(/\.$/, "")}.`;
      said.push(entry.error);
    }
    await redrawSoon();
  }));
  showMessages(said, page.stored.every((s) => s.ok) ? "ok" : "warn");
  page.storedDone = true;
}

/** Runs on one trained image's step, relative to SGD's: the ρ family (SAM, CrAM) takes two
 * gradients a step (BENCHMARKS.md: 1.97–2.0 × SGD; VAR, ℓ1, Hoyer within 3 %). */
const stepCost = (o) => (OPTIMIZERS.find((x) => x.name === o)?.params.includes("rho") ? 2 : 1);

/**
 * Milliseconds per training image (forward, backward, update) of each model on the page's CPU
 * executor (wasm, one worker), the estimate's basis: MLP from the first preset on this 2-core
 * machine in headless Chromium (8 runs × 4 000 images × 3 epochs in about 20 s with the sweep,
 * issue 22); LeNet-5 58 ms a step of 64 (issue 22); the CIFAR CNN, ResNet-8 and ViT-tiny from
 * their native CPU figures (RESULTS.md, BENCHMARKS.md) times the 3.2 wasm/native ratio
 * LeNet-5 shows. A model not listed costs the most listed. The GPU executor is estimated at
 * the CPU's cost, one run at a time: an upper bound where the GPU is a real one.
 */
const MS_PER_IMAGE = { mlp: 0.16, lenet5: 0.9, cnn: 4.5, resnet8: 6, "vit-tiny": 13 };

/** Estimated seconds to train and sweep `config` here (see MS_PER_IMAGE). */
export function estimateSeconds(config) {
  const per = MS_PER_IMAGE[config.model] ?? Math.max(...Object.values(MS_PER_IMAGE));
  const evals = config.test_size * (config.epochs + 1 + (config.sparsities?.length ?? 0)) / 3; // a forward is ~⅓ of a step
  const ms = (config.optimizers ?? []).reduce((a, o) => a + config.seeds * per * (config.train_size * config.epochs * stepCost(o) + evals), 0);
  const workers = expectedExecutor(config) === "cpu" ? state.ui.workers ?? autoPoolSize() : 1;
  return ms / 1000 / workers;
}

const minutes = (s) => (s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

/** "Re-run live": the stored config here, or the smaller preset when it is too large. */
export function rerun(run) {
  const stored = overlays.find((o) => o.origin === "stored");
  if (!stored) return;
  const config = stored.result.config;
  const msgs = applyConfig(state, config);
  const seconds = estimateSeconds(state.config);
  if (seconds > RERUN_MAX_S) {
    const id = typeof stored.result.rerun_preset === "string" ? stored.result.rerun_preset : state.ui.rerun;
    const p = id ? presetById(id) : null;
    const why = `The stored experiment would take about ${minutes(seconds)} here`;
    if (!p) {
      syncControls($("form"), state);
      updateURL();
      showMessages([...msgs, `${why}; its file (rerun_preset) and the address (rerun=) name no smaller preset, so its settings are loaded: press Run to train it anyway.`]);
      return;
    }
    choosePreset(p.id);
    run(); // clears the messages before its first wait
    showMessages([`${why}; training the smaller preset “${p.title}” instead.`], "ok");
    return;
  }
  syncControls($("form"), state);
  updateURL();
  run();
  showMessages([...msgs, `Re-running the stored experiment here (about ${minutes(seconds)}).`], msgs.length ? "warn" : "ok");
}
