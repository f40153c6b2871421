// The engine in a dedicated module worker: it owns the wasm module's WebExperiment objects
// and steps them, so that no training step ever runs on the page's main thread. The page
// (runner.js) talks to it only by messages; results cross as the engine's JSON strings.
//
// page → worker
//   {type: "init", js, module, files, debug}   js: the URL of trunk's wasm-bindgen module;
//        module: the compiled WebAssembly.Module (or the .wasm URL); files: [{name, bytes}] or
//        [{name, file}] (a File) — kept for every experiment this worker creates;
//        debug: {keepDevices} (tests only)
//   {type: "create", job, config, runs, paused}  config: the config JSON; runs: plan numbers
//        (null: every run); starts stepping at once unless `paused`
//   {type: "pause"} | {type: "resume"} | {type: "cancel"}   the current job
//   {type: "weights", id, run, sparsity}   safetensors bytes of finished plan run `run`
//   {type: "stats", id, json}   the engine's result_stats of a result JSON (a large imported
//        or stored result, off the page's thread)
// worker → page
//   {type: "ready"} | {type: "fatal", message}          after init
//   {type: "created", job, executor, adapter, notice}
//   {type: "event", job, event, result?}   every step's event; with the job's result JSON
//        (its finished runs) after a run ended (`run_done`, or `error`: a run diverged)
//   {type: "done", job, result}           the job's runs are all finished
//   {type: "stopped", job, result}        after "cancel": the unfinished run is dropped
//   {type: "failed", job, message, result}  creating or stepping threw (a lost device, …);
//        result: the job's last readable result JSON, or null
//   {type: "weights", id, bytes} | {type: "weights", id, error}
//   {type: "stats", id, json} | {type: "stats", id, error}
//
// The experiments of finished jobs stay alive (their runs' weights, for export) until the
// page terminates the worker.

const sentence = (e) => (e && e.message ? e.message : String(e));

let engine = null; // the wasm-bindgen module's exports
let starting = null; // init's promise: "create" waits for it
let files = [];
let job = null; // { id, exp, state: "creating" | "running" | "paused" | "stopping" | "ended", result, lastEvent }
const kept = []; // the experiments of ended jobs, for weights

/** A task boundary without setTimeout's clamping: lets "pause" and "cancel" in between steps. */
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()?.();
const nextTask = () => new Promise((ok) => {
  waiting.push(ok);
  channel.port2.postMessage(null);
});

const post = (msg, transfer) => self.postMessage(msg, transfer ?? []);

/** The job's result JSON now, or the last one read if the object cannot answer (a lost
 * device may take it along). */
function readResult(j) {
  try {
    j.result = j.exp.result();
  } catch (_) {
    // Keep the last good read.
  }
  return j.result ?? null;
}

function end(j) {
  j.state = "ended";
  if (j.exp) kept.push(j.exp);
  if (job === j) job = null;
}

async function loop(j) {
  if (j.looping || !j.exp) return;
  j.looping = true;
  try {
    await steps(j);
  } finally {
    j.looping = false;
  }
  if (j.state === "stopping") {
    // Cancelled: the finished runs stay (with their weights); the unfinished one is dropped.
    post({ type: "stopped", job: j.id, result: readResult(j) });
    end(j);
  }
}

async function steps(j) {
  while (j.state === "running") {
    let ev;
    try {
      j.inflight = j.exp.step();
      ev = JSON.parse(await j.inflight);
    } catch (e) {
      post({ type: "failed", job: j.id, message: sentence(e), result: j.result ?? null });
      end(j);
      return;
    } finally {
      j.inflight = null;
    }
    // An "error" event is a run that diverged: the experiment goes on with the next run.
    // The same error event twice is the engine's final answer.
    const seen = JSON.stringify(ev);
    if (ev.kind === "error" && seen === j.lastEvent) {
      post({ type: "failed", job: j.id, message: ev.message || "The engine stopped with an error.", result: readResult(j) });
      end(j);
      return;
    }
    j.lastEvent = seen;
    if (ev.kind === "done") {
      post({ type: "done", job: j.id, result: readResult(j) });
      end(j);
      return;
    }
    const ended = ev.kind === "run_done" || ev.kind === "error";
    post({ type: "event", job: j.id, event: ev, ...(ended ? { result: readResult(j) } : {}) });
    await nextTask();
  }
}

async function create({ job: id, config, runs, paused }) {
  const j = { id, exp: null, state: paused ? "paused" : "creating", result: null, lastEvent: null, inflight: null };
  job = j;
  await starting;
  if (!engine) {
    end(j); // "fatal" said why
    return;
  }
  if (j.state === "stopping") {
    post({ type: "stopped", job: id, result: null });
    end(j);
    return;
  }
  try {
    j.exp = await engine.WebExperiment.create(config, files, runs ?? undefined);
  } catch (e) {
    post({ type: "failed", job: id, message: sentence(e), result: null });
    end(j);
    return;
  }
  const notice = typeof j.exp.notice === "function" ? j.exp.notice() ?? null : null;
  post({ type: "created", job: id, executor: j.exp.executor(), adapter: j.exp.adapter(), notice });
  if (j.state === "creating") j.state = "running";
  if (j.state !== "paused") loop(j); // "stopping": reports "stopped" at once
}

/** Keeps a handle on every GPUDevice the engine opens, so a test can destroy it (a real loss). */
function keepDevices() {
  self.__devices = [];
  if (!self.GPUAdapter) return;
  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    self.__devices.push(device);
    return device;
  };
}

async function init({ js, module, files: given, debug }) {
  try {
    if (debug?.keepDevices) keepDevices();
    // A dropped file comes as its File (no copy on the page's thread); the rest as bytes.
    files = await Promise.all((given ?? []).map(async (f) => ({
      name: f.name,
      bytes: f.bytes ?? new Uint8Array(await f.file.arrayBuffer()),
    })));
    const bindings = await import(js);
    await bindings.default({ module_or_path: module });
    engine = bindings;
    post({ type: "ready" });
  } catch (e) {
    post({ type: "fatal", message: `The engine could not start in a worker: ${sentence(e)}` });
  }
}

async function weights({ id, run, sparsity }) {
  // Not while a step holds the experiment (the next one waits for this task to end).
  while (job?.inflight) await job.inflight.catch(() => null);
  const holders = [...kept, ...(job?.exp ? [job.exp] : [])];
  for (const exp of holders) {
    let bytes;
    try {
      bytes = exp.weights(run, sparsity ?? undefined);
    } catch (_) {
      continue; // not a finished run of this experiment
    }
    post({ type: "weights", id, bytes }, [bytes.buffer]);
    return;
  }
  post({ type: "weights", id, error: "The weights of this run are gone (its run was cancelled, or its worker stopped)." });
}

self.onmessage = ({ data: msg }) => {
  switch (msg.type) {
    case "init":
      starting = init(msg);
      break;
    case "create":
      create(msg);
      break;
    case "pause":
      if (job?.state === "running" || job?.state === "creating") job.state = "paused";
      break;
    case "resume":
      if (job?.state === "paused") {
        job.state = job.exp ? "running" : "creating";
        loop(job);
      }
      break;
    case "cancel":
      if (job && job.state !== "ended") {
        job.state = "stopping";
        loop(job); // reports "stopped" once no step is in flight (at once when paused)
      }
      break;
    case "weights":
      weights(msg);
      break;
    case "stats":
      starting.then(() => {
        try {
          post({ type: "stats", id: msg.id, json: engine.result_stats(msg.json) });
        } catch (e) {
          post({ type: "stats", id: msg.id, error: sentence(e) });
        }
      });
      break;
    default:
      break;
  }
};
