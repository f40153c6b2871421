// Drives the engine's WebExperiment: awaits exp.step() one unit of work at a time and
// yields to the browser between calls, so the page never freezes. Pause = stop calling,
// resume = call again, cancel = free the object once no step is in flight.
//
// After a device loss (or any error) the finished runs are kept and the remaining
// (optimizer, seed) pairs can continue as new parts — one per seed, on a new GPU device or
// on the CPU executor; `result()` merges the parts into one result JSON.

import { mergeParts } from "./results.js";

const yieldToBrowser = () => new Promise((ok) => setTimeout(ok, 0));
const sentence = (e) => (e && e.message ? e.message : String(e));
const key = (optimizer, seed) => `${optimizer}/${seed}`;

export class Session {
  /**
   * wasm: the engine's exports; config: the normalised config object; files: [{name, bytes}];
   * on: { event(ev), runDone(result), status(status, message) }.
   */
  constructor(wasm, config, files, on) {
    this.wasm = wasm;
    this.config = config;
    this.files = files;
    this.on = on;
    this.id = `exp-${Date.now()}`;
    this.status = "idle"; // idle | loading | running | paused | cancelled | done | error
    this.message = null;
    this.exp = null;
    this.doneParts = []; // result JSONs of finished parts
    this.queue = [config];
    this.inflight = null;
    this.looping = false;
    this.executor = null;
    this.adapter = null;
  }

  setStatus(status, message = null) {
    this.status = status;
    this.message = message;
    this.on.status(status, message);
  }

  /** Every (optimizer, seed) run the config asks for, in the engine's order (seed-major). */
  allRuns() {
    const c = this.config;
    return Array.from({ length: c.seeds }, (_, k) => c.optimizers.map((o) => ({ optimizer: o, seed: c.seed + k }))).flat();
  }

  /** The merged result JSON of all finished runs so far. */
  result() {
    const part = this.partResult();
    return mergeParts(this.config, part ? [...this.doneParts, part] : this.doneParts);
  }

  /** The current part's result JSON, or the last one read if the object cannot answer now
   * (a lost device may take it along). */
  partResult() {
    if (!this.exp) return null;
    try {
      this.lastPartResult = JSON.parse(this.exp.result());
    } catch (_) {
      // Keep the last good read.
    }
    return this.lastPartResult ?? null;
  }

  /** Opens the next part's experiment; false when none is left. */
  async openNext(executor) {
    const cfg = this.queue.shift();
    if (!cfg) return false;
    const part = { ...cfg, executor: executor ?? cfg.executor };
    this.setStatus("loading", "Preparing the experiment and compiling its kernels…");
    this.exp = await this.wasm.WebExperiment.create(JSON.stringify(part), this.files);
    this.lastPartResult = null;
    this.executor = this.exp.executor();
    this.adapter = this.exp.adapter();
    // Why the engine runs elsewhere than asked (e.g. no usable GPU), when it says so.
    this.notice = typeof this.exp.notice === "function" ? this.exp.notice() ?? null : null;
    return true;
  }

  /** Starts the first part. */
  async start() {
    if (this.status === "cancelled") return;
    try {
      await this.openNext();
    } catch (e) {
      if (this.status !== "cancelled") this.setStatus("error", sentence(e));
      return;
    }
    if (this.status === "cancelled") {
      this.free();
      return;
    }
    this.setStatus("running");
    this.loop();
  }

  async loop() {
    if (this.looping) return;
    this.looping = true;
    try {
      while (this.status === "running") {
        let ev;
        try {
          this.inflight = this.exp.step();
          ev = JSON.parse(await this.inflight);
        } catch (e) {
          ev = { kind: "error", message: sentence(e), thrown: true };
        } finally {
          this.inflight = null;
        }
        // An "error" event is a run that diverged: the experiment goes on with the next run.
        // Only a thrown step, or the same error event twice (the engine's final answer), stops it.
        const seen = JSON.stringify(ev);
        const final = ev.kind === "error" && (ev.thrown || seen === this.lastEventJSON);
        this.lastEventJSON = seen;
        if (!final) this.on.event(ev, this);
        if (ev.kind === "run_done" || (ev.kind === "error" && !final)) this.on.runDone(this.result(), this);
        if (final) {
          this.setStatus("error", ev.message || "The engine stopped with an error.");
        } else if (ev.kind === "done") {
          if (this.queue.length === 0) {
            this.on.runDone(this.result(), this);
            this.setStatus("done");
          } else {
            this.closePart();
            try {
              await this.openNext(this.nextExecutor);
              this.setStatus("running");
            } catch (e) {
              this.setStatus("error", sentence(e));
            }
          }
        }
        await yieldToBrowser();
      }
    } finally {
      this.looping = false;
    }
    if (this.status === "cancelled") this.closePart();
  }

  pause() {
    if (this.status === "running") this.setStatus("paused");
  }

  resume() {
    if (this.status !== "paused") return;
    this.setStatus("running");
    this.loop();
  }

  cancel() {
    if (!["running", "paused", "loading", "error"].includes(this.status)) return;
    this.setStatus("cancelled");
    if (!this.looping) this.closePart();
  }

  /** Keeps the current part's finished runs and drops its engine object. */
  closePart() {
    const part = this.partResult();
    if (part) this.doneParts.push(part);
    this.free();
  }

  free() {
    try {
      this.exp?.free();
    } catch (_) {
      // Already gone (e.g. with the device).
    }
    this.exp = null;
    this.lastPartResult = null;
  }

  /** The (optimizer, seed) runs not finished yet. */
  remaining() {
    const done = new Set(this.result().runs.map((r) => key(r.optimizer, r.seed)));
    return this.allRuns().filter((r) => !done.has(key(r.optimizer, r.seed)));
  }

  /** After an error: the remaining runs continue, one part per seed, on `executor`. */
  async continueOn(executor) {
    if (this.status !== "error") return;
    this.closePart();
    const left = this.remaining();
    const seeds = [...new Set(left.map((r) => r.seed))];
    this.queue = seeds.map((seed) => ({
      ...this.config, seed, seeds: 1,
      optimizers: this.config.optimizers.filter((o) => left.some((r) => r.seed === seed && r.optimizer === o)),
    }));
    this.nextExecutor = executor;
    try {
      if (!(await this.openNext(executor))) {
        this.setStatus("done");
        return;
      }
    } catch (e) {
      this.setStatus("error", sentence(e));
      return;
    }
    if (this.status === "cancelled") {
      this.free();
      return;
    }
    this.setStatus("running");
    this.loop();
  }

  /** Runs fn(exp, localIndex) for merged run `index` once no step is in flight. */
  async withRun(index, fn) {
    while (this.inflight) await this.inflight.catch(() => null);
    const before = this.doneParts.reduce((a, p) => a + (p.runs?.length ?? 0), 0);
    if (!this.exp || index < before) {
      throw new Error("The weights of this run are gone (its device was lost, or the run was cancelled).");
    }
    return fn(this.exp, index - before);
  }
}
