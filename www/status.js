// What the page says about the session: the ready sentence, the status line, the run
// buttons and the notices as the session's status changes; finished runs drawn and saved.

import { describe } from "./results.js";
import { saveResult } from "./store.js";
import { browserAdapter } from "./webgpu.js";
import { $, sentence, page, state, wasm, session, setView, autoPaused, setAutoPaused, setStatus, showMessages } from "./ctx.js";
import { redrawSoon, nextTask } from "./draw.js";
import { refreshSaved } from "./saved.js";
import { markNextCompiling, showProgressLine } from "./progress.js";

/** The ready sentence, naming the executor Run will use (as the engine will choose it). */
export function readyMessage() {
  const x = state.config.executor;
  const software = browserAdapter && (/fallback adapter/.test(browserAdapter) || wasm.is_software_adapter_name?.(browserAdapter));
  if (x === "cpu") return "Ready: press Run to train on the CPU executor (WebAssembly), as the settings ask.";
  if (page.reason) return "Ready: press Run to train on the CPU executor (WebAssembly): this browser offers no usable WebGPU.";
  if (x === "auto" && software) {
    return `Ready: press Run to train on the CPU executor (WebAssembly): the GPU adapter “${browserAdapter}” is a software rasteriser, on which the CPU is many times faster.`;
  }
  return `Ready: press Run to train on your GPU${browserAdapter ? ` (${browserAdapter})` : ""}.`;
}

/**
 * A run ended: merges the finished runs (in a task of its own), draws them and saves them.
 * Runs that end meanwhile are taken along by the pass under way (s.drawn: its promise).
 */
export function onRunDone(s) {
  if (s.finishing) {
    s.finishAgain = true;
    return;
  }
  s.finishing = true;
  s.drawn = (async () => {
    try {
      do {
        s.finishAgain = false;
        await nextTask();
        if (s !== session) return;
        const result = s.result();
        setView({ result, source: "live" });
        await redrawSoon();
        if (result.runs.length === 0) continue;
        try {
          await saveResult(s.id, describe(result), result);
          await nextTask();
          await refreshSaved();
        } catch (e) {
          showMessages([`Finished runs could not be saved in this browser: ${sentence(e)}`]);
        }
      } while (s.finishAgain);
    } finally {
      s.finishing = false;
    }
  })();
}

export function onSessionStatus(status, message) {
  if (status === "running" && state.ui.embed && page.visible === false) {
    // An embedded figure scrolled away while it was loading: wait until it is back.
    setAutoPaused(true);
    session.pause();
    return;
  }
  if (["done", "cancelled", "error"].includes(status)) {
    page.timing.finished = performance.now();
    // For the tests: the end is reported once the finished runs are drawn and saved.
    const s = session;
    Promise.resolve(s.drawn).then(() => {
      if (s === session && s.status === status) page.run = status;
    });
  } else {
    page.run = status;
  }
  const busy = ["loading", "running", "paused"].includes(status);
  $("run-btn").disabled = busy || !page.ready;
  $("rerun-btn").disabled = busy || !page.ready;
  $("pause-btn").disabled = !["running", "paused"].includes(status);
  $("pause-btn").textContent = status === "paused" ? "Resume" : "Pause";
  $("cancel-btn").disabled = !busy && status !== "error";
  $("form").querySelector("fieldset").disabled = busy;
  $("preset").disabled = busy;
  $("recover").hidden = status !== "error" || !session?.recoverable;
  const many = session && session.executor === "cpu" && session.limit() > 1 ? `, up to ${session.limit()} runs at once` : "";
  const where = session?.executor ? ` on the ${session.executor === "gpu" ? `GPU (${session.adapter})` : `CPU executor${many}`}` : "";
  const text = {
    idle: "", loading: message ?? "Preparing…", running: `running${where}`,
    paused: autoPaused ? "paused while off-screen" : "paused", cancelled: "cancelled", done: "finished", error: "stopped",
  }[status];
  $("run-state").textContent = text;
  showProgressLine();
  if (session?.notice && session.notice !== page.engineNotice) {
    page.engineNotice = session.notice;
    const n = $("notice");
    n.textContent = session.notice;
    n.hidden = false;
  }
  page.executor = session?.executor ?? null;
  page.adapter = session?.adapter ?? null;
  $("engine-info").textContent = page.executor ? `· executor: ${page.executor}${page.adapter ? ` · ${page.adapter}` : ""}` : "";
  if (status === "error") {
    page.errors.push(message);
    setStatus(message, "error");
    $("recover-text").textContent = `${message} The finished runs are kept; the remaining ones can continue.`;
    $("continue-gpu").hidden = page.reason !== null;
  } else if (status === "done") {
    setStatus(`Finished: ${session.result().runs.length} runs on the ${session.executor === "gpu" ? "GPU" : "CPU executor"}.`, "ok");
  } else if (status === "cancelled") {
    setStatus("Cancelled. Finished runs are kept.");
    refreshSaved().catch(() => null); // the saved record now reads "cut short"
  } else if (status === "loading") {
    setStatus(message ?? "Preparing…");
  } else if (status === "running" && page.timing.firstStep === null) {
    markNextCompiling();
    setStatus("Compiling the kernels and taking the first step…");
  }
}
