// The page's entry module: checks for WebGPU, then asks the wasm module (built by trunk
// from the Rust crate) to open the GPU and run the smoke check. Everything shown comes
// from textContent — nothing from the wasm side or the URL is ever inserted as HTML.

const $ = (id) => document.getElementById(id);

/** The page's state, also read by the browser tests. */
const state = (window.__varlab = {
  done: false,
  ok: false,
  reason: null, // null | "insecure" | "no-webgpu" | "no-adapter" | "error"
  message: null,
  smoke: null,
  browserAdapter: null, // navigator.gpu's own adapter.info (wgpu cannot see names on the web)
});

function setStatus(text, kind = "") {
  $("status-text").textContent = text;
  $("status").className = kind;
}

function fail(reason, message) {
  state.reason = reason;
  state.message = message;
  setStatus(message, "error");
}

/** The wasm exports, once trunk's loader has initialised the module. */
function wasmBindings(timeoutMs = 60000) {
  if (window.wasmBindings) return Promise.resolve(window.wasmBindings);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("The WebAssembly module did not load; reload the page or check the browser console.")),
      timeoutMs,
    );
    addEventListener(
      "TrunkApplicationStarted",
      () => {
        clearTimeout(timer);
        resolve(window.wasmBindings);
      },
      { once: true },
    );
  });
}

/** Explains why WebGPU is unavailable, or returns null when an adapter exists. */
async function whyNoWebGPU() {
  if (!window.isSecureContext) {
    return ["insecure",
      "WebGPU only works on secure pages, and this one was opened over plain http from another host. " +
      "Open it over https, or from http://localhost."];
  }
  if (!("gpu" in navigator)) {
    return ["no-webgpu",
      "This browser has no WebGPU. Use Chrome or Edge 113 or newer, Safari 26 or newer, or Firefox 141 or newer " +
      "(on Linux, Chrome needs chrome://flags/#enable-unsafe-webgpu)."];
  }
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch (_) {
    adapter = null;
  }
  if (adapter) {
    const i = adapter.info ?? {};
    state.browserAdapter = {
      vendor: i.vendor ?? "", architecture: i.architecture ?? "", description: i.description ?? "",
      isFallbackAdapter: Boolean(i.isFallbackAdapter),
    };
  }
  if (!adapter) {
    return ["no-adapter",
      "WebGPU is present but offers no GPU adapter: this machine has no usable GPU, or only a software one " +
      "that the browser blocks. In Chrome or Chromium, enable chrome://flags/#enable-unsafe-webgpu " +
      "(or start it with --enable-unsafe-webgpu) and check chrome://gpu."];
  }
  return null;
}

function adapterName(a) {
  const b = state.browserAdapter;
  const web = b && [b.vendor, b.architecture, b.description].filter(Boolean).join(" ");
  const name = a.name || web || "(the browser does not say)";
  return b && b.isFallbackAdapter ? `${name} (fallback adapter)` : name;
}

function renderAdapter(a) {
  const rows = [
    ["adapter", adapterName(a)],
    ["backend", `${a.backend} · ${a.device_type}${a.is_software ? " (software)" : ""}`],
    ["driver", [a.driver, a.driver_info].filter(Boolean).join(" ") || "—"],
    ["timestamps", a.timestamps ? "yes" : "no"],
    ["max storage binding", `${(a.limits.max_storage_buffer_binding_size / 2 ** 20).toFixed(0)} MiB`],
    ["max buffer", `${(a.limits.max_buffer_size / 2 ** 20).toFixed(0)} MiB`],
    ["workgroup storage", `${a.limits.max_compute_workgroup_storage_size} B`],
    ["invocations / workgroup", String(a.limits.max_compute_invocations_per_workgroup)],
  ];
  const dl = $("adapter");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.dataset.key = k;
    dl.append(dt, dd);
  }
  $("gpu").hidden = false;
}

function renderSmoke(s) {
  const p = $("smoke-result");
  const verdict = document.createElement("span");
  verdict.className = s.matches_cpu ? "pass" : "fail";
  verdict.textContent = s.matches_cpu ? "matches the CPU twin" : "DOES NOT match the CPU twin";
  p.replaceChildren(
    `A ${s.shape.join("×")} matmul on your GPU `,
    verdict,
    ` (largest difference ${s.max_abs_error.toExponential(2)}, allowed ${s.max_allowed_error.toExponential(2)}).`,
  );
  const tbody = document.querySelector("#bench tbody");
  tbody.replaceChildren();
  for (const r of s.bench) {
    const tr = document.createElement("tr");
    for (const v of [`${r.m}×${r.n}×${r.k}`, r.ms.toFixed(2), r.gflops.toFixed(3), r.method]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    tbody.append(tr);
  }
  $("smoke").hidden = false;
}

async function main() {
  try {
    const why = await whyNoWebGPU();
    if (why) {
      fail(...why);
      return;
    }
    setStatus("Loading and compiling the GPU kernels…");
    const wasm = await wasmBindings();
    $("version").textContent = wasm.version();
    const smoke = JSON.parse(await wasm.smoke());
    state.smoke = smoke;
    renderAdapter(smoke.adapter);
    renderSmoke(smoke);
    state.ok = smoke.matches_cpu;
    if (state.ok) {
      setStatus("WebGPU works here: the kernels run on your GPU and agree with the CPU reference.", "ok");
    } else {
      fail("error", "Your GPU ran the kernel but its result disagrees with the CPU reference; results here would not be trustworthy.");
    }
  } catch (e) {
    fail("error", `Something went wrong: ${e && e.message ? e.message : e}`);
  } finally {
    state.done = true;
    document.body.dataset.state = state.ok ? "ready" : "error";
  }
}

main();
