// Runs an experiment in a pool of dedicated workers (engine-worker.js), one run each: the
// main thread only hands out runs, forwards pause / resume / cancel, and merges what comes
// back; no training step runs here. The runs are the engine's plan (`run_plan`: run i is
// entry i); each worker is handed the next unstarted run (with the CPU executor up to
// `pool` at once), or — one worker, as on the GPU executor — all of them in one experiment.
// The parts' results merge in the engine (`merge_results`): plan order, paired statistics
// recomputed, identical to training the runs in one experiment.
//
// After a device loss (or any error) the finished runs are kept and the remaining runs can
// continue on a new GPU device or on the CPU executor, in fresh workers.

import { mergeParts } from "./results.js";

const sentence = (e) => (e && e.message ? e.message : String(e));
const WORKER = new URL("./engine-worker.js", import.meta.url);
const BUSY = ["loading", "running", "paused"];

/** Runs at once with the CPU executor when the page's setting is automatic: one fewer than
 * the browser's logical cores (the main thread keeps one), at least one. */
export const autoPoolSize = () => Math.max(1, (navigator.hardwareConcurrency || 2) - 1);

/**
 * The wasm-bindgen module trunk emitted for this page, as absolute URLs a worker can load:
 * { js, wasm }, from trunk's preload links (or its loader script); null when not found.
 */
export function engineFiles(doc = document) {
  const linked = (rel, ext) => [...doc.querySelectorAll(`link[rel="${rel}"]`)].map((l) => l.href)
    .find((h) => new URL(h).pathname.endsWith(ext));
  const loader = [...doc.querySelectorAll('script[type="module"]')].map((s) => s.textContent).join("\n");
  const quoted = (re) => {
    const m = loader.match(re);
    return m ? new URL(m[1], doc.baseURI).href : undefined;
  };
  const js = linked("modulepreload", ".js") ?? quoted(/from\s+["']([^"']+\.js)["']/);
  const wasm = linked("preload", ".wasm") ?? quoted(/["']([^"']+\.wasm)["']/);
  return js && wasm ? { js, wasm } : null;
}

let compiled = null;
/** The engine's WebAssembly.Module, compiled once per page and shared by every worker (its
 * URL instead when it cannot be compiled here: each worker then compiles it). */
export function engineModule(wasmURL) {
  compiled ??= (async () => {
    try {
      return await WebAssembly.compileStreaming(fetch(wasmURL));
    } catch (_) {
      try {
        return await WebAssembly.compile(await (await fetch(wasmURL)).arrayBuffer());
      } catch (_) {
        return wasmURL;
      }
    }
  })();
  return compiled;
}

/**
 * The engine's result_stats of `json` in a worker of its own (a result of 10⁴ runs takes the
 * engine a long task): resolves to its JSON, rejects with its sentence.
 */
export async function statsInWorker(json) {
  const files = engineFiles();
  if (!files) throw new Error("The page cannot find its engine files.");
  const w = new Worker(WORKER, { type: "module" });
  try {
    return await new Promise((ok, fail) => {
      w.onmessage = ({ data: m }) => {
        if (m.type === "fatal" || m.error) fail(new Error(m.message ?? m.error));
        else if (m.type === "stats") ok(m.json);
      };
      w.onerror = (e) => fail(new Error(e.message || "The engine's worker failed."));
      engineModule(files.wasm).then((module) => {
        w.postMessage({ type: "init", js: files.js, module, files: [] });
        w.postMessage({ type: "stats", id: 1, json });
      });
    });
  } finally {
    w.terminate();
  }
}

export class Session {
  /**
   * wasm: the engine's exports (main thread: plan and merge only); config: the normalised
   * config object; files: [{name, bytes, file?}]; on: { event(ev), runDone(session): a run
   * ended (`result()` has it), status(status, message) }; opts: { engine: engineFiles(),
   * pool: runs at once on the CPU executor, executor: "gpu" | "cpu" as the page expects the
   * engine to choose, debug: passed on to the workers (tests) }.
   */
  constructor(wasm, config, files, on, { engine = null, pool = 1, executor = null, debug = null } = {}) {
    this.wasm = wasm;
    this.config = config;
    this.files = files;
    this.on = on;
    this.engine = engine;
    this.pool = Math.max(1, Math.floor(pool));
    this.expected = executor; // the executor the next parts are expected to run on
    this.debug = debug;
    this.id = `exp-${Date.now()}`;
    this.status = "idle"; // idle | loading | running | paused | cancelled | done | error
    this.message = null;
    /** The engine's one run order: [{optimizer, seed}], run i is entry i. */
    this.plan = JSON.parse(wasm.run_plan(JSON.stringify(config)));
    this.queue = this.plan.map((_, i) => i); // plan numbers not handed out yet
    this.workers = []; // { w, part, retired }
    this.parts = []; // { job, runs, executor, result } in the order they were created
    this.active = new Map(); // plan number → worker, runs in progress
    this.owner = new Map(); // plan number → worker, finished runs (their weights)
    this.maxActive = 0;
    this.nextJob = 0;
    this.partConfig = JSON.stringify(config);
    this.executor = null;
    this.adapter = null;
    this.notice = null;
    this.recoverable = false;
    this.merged = null;
    this.requests = new Map(); // weights request id → { ok, fail }
  }

  setStatus(status, message = null) {
    this.status = status;
    this.message = message;
    this.on.status(status, message);
  }

  /** Every (optimizer, seed) run the config asks for, in the engine's order. */
  allRuns() {
    return this.plan;
  }

  /** Runs at once now: the pool on the CPU executor, one on the GPU's. */
  limit() {
    return this.expected === "gpu" ? 1 : this.pool;
  }

  /** The merged result JSON of all finished runs so far (engine's `merge_results`). */
  result() {
    if (this.merged) return this.merged;
    const parts = this.parts.filter((p) => p.result);
    if (parts.length === 0) return mergeParts(this.config, []);
    // A part continued on another executor asked for it in its config; the merged result
    // keeps the experiment's config and names every executor used.
    const same = parts.map((p) => ({ ...p.result, config: { ...p.result.config, executor: this.config.executor } }));
    let merged;
    try {
      merged = JSON.parse(this.wasm.merge_results(JSON.stringify(same)));
    } catch (e) {
      // Not expected (the parts are shares of one plan); the runs side by side, without statistics.
      merged = mergeParts(this.config, parts.map((p) => p.result));
      merged.partial = `The parts could not be merged: ${sentence(e)}`;
    }
    const used = parts.filter((p) => p.result.runs.length > 0);
    const executors = [...new Set((used.length ? used : parts).map((p) => p.result.environment?.executor).filter(Boolean))];
    if (executors.length > 1) merged.environment.executor = executors.join("+");
    this.merged = merged;
    return merged;
  }

  /** Starts the workers. */
  async start() {
    if (this.status === "cancelled") return;
    this.setStatus("loading", "Starting the engine and compiling its kernels…");
    try {
      if (typeof Worker === "undefined") throw new Error("This browser cannot run Web Workers, which varlab trains in.");
      if (!this.engine) throw new Error("The page cannot find its engine files (the wasm module trunk builds); rebuild the page.");
      this.module = await engineModule(this.engine.wasm);
    } catch (e) {
      this.setStatus("error", sentence(e));
      return;
    }
    if (this.status !== "loading") return;
    this.fill();
  }

  /** Hands the unstarted runs to idle workers, starting workers up to the limit. */
  fill() {
    if (!["loading", "running"].includes(this.status)) return;
    const live = () => this.workers.filter((x) => !x.retired);
    while (this.queue.length) {
      const idle = live().find((x) => !x.part);
      const slot = idle ?? (live().length < this.limit() ? this.spawn() : null);
      if (!slot) break;
      // One worker in all: every remaining run in one experiment (data and device set up once).
      const runs = this.limit() === 1 ? this.queue.splice(0) : [this.queue.shift()];
      this.assign(slot, runs);
    }
    if (this.queue.length === 0 && this.workers.every((x) => x.retired || !x.part) && this.status === "running") {
      this.on.runDone(this);
      this.setStatus("done");
    }
  }

  spawn() {
    const slot = { w: null, part: null, retired: false };
    let w;
    try {
      w = new Worker(WORKER, { type: "module" });
    } catch (e) {
      this.fail(`The engine's worker could not start: ${sentence(e)}`, false);
      return null;
    }
    slot.w = w;
    w.onmessage = (e) => this.onMessage(slot, e.data);
    w.onerror = (e) => {
      e.preventDefault?.();
      const why = e.message ? `: ${e.message}` : " (this browser may lack module workers: Chrome 80+, Safari 15+, Firefox 114+)";
      this.onCrash(slot, `The engine's worker stopped${why}.`);
    };
    // Dropped files go as their File objects (shared, not copied on this thread).
    const files = this.files.map((f) => (f.file instanceof Blob ? { name: f.name, file: f.file } : { name: f.name, bytes: f.bytes }));
    w.postMessage({ type: "init", js: this.engine.js, module: this.module, files, debug: this.debug });
    this.workers.push(slot);
    return slot;
  }

  assign(slot, runs) {
    const part = { job: this.nextJob++, runs, executor: null, result: null, json: null };
    slot.part = part;
    this.parts.push(part);
    slot.w.postMessage({ type: "create", job: part.job, config: this.partConfig, runs, paused: this.status === "paused" });
  }

  onMessage(slot, m) {
    if (m.type === "weights") {
      const r = this.requests.get(m.id);
      this.requests.delete(m.id);
      if (r) m.error ? r.fail(new Error(m.error)) : r.ok(m.bytes);
      return;
    }
    if (m.type === "fatal") {
      this.onCrash(slot, m.message);
      return;
    }
    const part = slot.part;
    if (!part || m.job !== part.job) return; // a reply about an earlier job
    if (slot.retired) {
      // A worker of the part that stopped with an error, after "Continue": its runs are
      // being trained again elsewhere, so what it still says is dropped.
      if (["done", "stopped", "failed"].includes(m.type)) slot.part = null;
      return;
    }
    if (typeof m.result === "string" && m.result !== part.json) {
      part.json = m.result;
      part.result = JSON.parse(m.result);
      this.merged = null;
    }
    switch (m.type) {
      case "created":
        part.executor = m.executor;
        this.executor = m.executor;
        this.adapter = m.adapter;
        this.notice = m.notice ?? this.notice;
        this.recoverable = true;
        if (this.expected !== m.executor) {
          this.expected = m.executor; // the engine chose otherwise: follow it
          this.fill();
        }
        if (this.status === "loading") {
          this.setStatus("running");
          this.fill();
        }
        break;
      case "event": {
        const ev = m.event;
        const ended = ev.kind === "run_done" || ev.kind === "error";
        if (ended) {
          this.active.delete(ev.run);
          this.owner.set(ev.run, slot);
        } else {
          this.active.set(ev.run, slot);
          this.maxActive = Math.max(this.maxActive, this.active.size);
        }
        if (this.status !== "cancelled") this.on.event(ev, this);
        if (ended) this.on.runDone(this);
        break;
      }
      case "done":
      case "stopped":
        for (const r of part.runs) if (this.active.get(r) === slot) this.active.delete(r);
        slot.part = null;
        if (m.type === "done") this.fill();
        break;
      case "failed":
        for (const r of part.runs) if (this.active.get(r) === slot) this.active.delete(r);
        slot.part = null;
        // Recoverable once any part was created (a device lost, memory short); not when the
        // config or the data are refused.
        this.fail(m.message, this.recoverable);
        break;
      default:
        break;
    }
  }

  onCrash(slot, message) {
    slot.retired = true;
    const part = slot.part;
    slot.part = null;
    if (part) for (const r of part.runs) if (this.active.get(r) === slot) this.active.delete(r);
    for (const [run, owner] of this.owner) if (owner === slot) this.owner.delete(run);
    try {
      slot.w?.terminate();
    } catch (_) {
      // Gone already.
    }
    this.fail(message, this.recoverable);
  }

  /** Stops the experiment with `message`: the other workers drop their unfinished runs,
   * the finished ones are kept; `recoverable`: the remaining runs can continue. */
  fail(message, recoverable) {
    if (!BUSY.includes(this.status)) return;
    this.recoverable = recoverable;
    for (const x of this.workers) if (x.part) x.w.postMessage({ type: "cancel" });
    this.setStatus("error", message || "The engine stopped with an error.");
  }

  pause() {
    if (this.status !== "running") return;
    this.setStatus("paused");
    for (const x of this.workers) if (x.part) x.w.postMessage({ type: "pause" });
  }

  resume() {
    if (this.status !== "paused") return;
    this.setStatus("running");
    if (this.status !== "running") return; // paused again at once (e.g. off-screen)
    for (const x of this.workers) if (x.part) x.w.postMessage({ type: "resume" });
    this.fill();
  }

  /** Stops every run in progress; the finished runs (and their weights) are kept. */
  cancel() {
    if (![...BUSY, "error"].includes(this.status)) return;
    this.queue = [];
    this.setStatus("cancelled");
    for (const x of this.workers) if (x.part) x.w.postMessage({ type: "cancel" });
  }

  /** Ends every worker (and with them the engine's objects). */
  free() {
    for (const x of this.workers) {
      try {
        x.w?.terminate();
      } catch (_) {
        // Gone already.
      }
    }
    this.workers = [];
    this.owner.clear();
    for (const r of this.requests.values()) r.fail(new Error("The experiment was closed."));
    this.requests.clear();
  }

  /** The plan numbers not finished yet. */
  remaining() {
    const done = new Set(this.result().runs.map((r) => `${r.optimizer}/${r.seed}`));
    return this.plan.map((r, i) => (done.has(`${r.optimizer}/${r.seed}`) ? null : i)).filter((i) => i !== null);
  }

  /** After an error: the remaining runs continue on `executor` ("gpu" or "cpu"), in fresh workers. */
  continueOn(executor) {
    if (this.status !== "error") return;
    for (const x of this.workers) x.retired = true; // they keep their finished runs' weights
    this.queue = this.remaining();
    this.expected = executor;
    this.partConfig = JSON.stringify({ ...this.config, executor });
    if (this.queue.length === 0) {
      this.setStatus("done");
      return;
    }
    this.setStatus("loading", "Preparing the remaining runs…");
    this.fill();
  }

  /** Whether finished runs' weights can be downloaded. */
  hasWeights() {
    return this.owner.size > 0;
  }

  /** The safetensors bytes of the merged result's run `index`, dense (`sparsity` null) or pruned. */
  weights(index, sparsity) {
    const r = this.result().runs[index];
    const run = r ? this.plan.findIndex((p) => p.optimizer === r.optimizer && p.seed === r.seed) : -1;
    const slot = this.owner.get(run);
    if (!slot) {
      return Promise.reject(new Error("The weights of this run are gone (its device was lost, or the run was cancelled)."));
    }
    const id = `${run}-${Date.now()}-${Math.random()}`;
    return new Promise((ok, fail) => {
      this.requests.set(id, { ok, fail });
      slot.w.postMessage({ type: "weights", id, run, sparsity });
    });
  }
}
