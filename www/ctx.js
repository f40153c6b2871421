// What the page's modules share: the engine's exports, the settings, the running session,
// what the charts show, DOM helpers, the status line and the messages, and the object the
// browser tests read (window.__varlab). The variables are live bindings: read them anywhere,
// change them through their setters.

import { browserAdapter } from "./webgpu.js";

export const $ = (id) => document.getElementById(id);
export const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};
export const sentence = (e) => (e && e.message ? e.message : String(e));

/** What the page exposes to its browser tests (read-only for them). */
export const page = (window.__varlab = {
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

export let state = null; // read from the URL once the engine's defaults are known (main)
export const setState = (s) => (state = page.state = s);
export let wasm = null;
export const setWasm = (w) => (wasm = w);
export let session = null;
export const setSession = (s) => (session = s);
/** The result the charts and table show, and where it comes from ("none", "live", "saved:ID"). */
export let view = { result: null, source: "none" };
export const setView = (v) => (view = v);
/** Results drawn beside it: [{name, result, origin: "imported" | "stored"}]. */
export let overlays = [];
export const setOverlays = (o) => (overlays = o);
export let charts = null;
export const setCharts = (c) => (charts = c);
/** The session was paused because the embedded figure left the screen. */
export let autoPaused = false;
export const setAutoPaused = (p) => (autoPaused = p);

// ---------- messages and status ----------

let statusUpdate = null; // the status sentence for the next frame (while running)

export function setStatus(text, kind = "") {
  statusUpdate = null; // a sentence set now wins over one waiting for the next frame
  $("status-text").textContent = text;
  $("status").className = kind;
}

/** The status sentence for the next frame (see progress.js). */
export const statusSoon = (text) => (statusUpdate = text);
/** Takes the sentence waiting for the next frame (null when none). */
export function takeStatus() {
  const t = statusUpdate;
  statusUpdate = null;
  return t;
}

export function showMessages(msgs, kind = "warn") {
  const ul = $("messages");
  ul.replaceChildren(...msgs.map((m) => el("li", m, kind)));
}

/** The executor the engine will choose for the settings: "gpu" or "cpu". */
export function expectedExecutor(config = state.config) {
  const x = config.executor;
  const software = browserAdapter && (/fallback adapter/.test(browserAdapter) || wasm.is_software_adapter_name?.(browserAdapter));
  return x === "cpu" || page.reason || (x === "auto" && software) ? "cpu" : "gpu";
}
