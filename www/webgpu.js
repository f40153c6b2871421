// Why WebGPU is unavailable here, in one sentence, or null when the browser offers an
// adapter. The engine then falls back to its CPU executor (wasm); the page says so.

/** What the browser says about its WebGPU adapter, once `whyNoWebGPU` found one. */
export let browserAdapter = null;

/** Resolves to null, or to [reason, sentence] with reason "insecure" | "no-webgpu" | "no-adapter". */
export async function whyNoWebGPU() {
  if (!window.isSecureContext) {
    return ["insecure",
      "WebGPU only works on secure pages, and this one was opened over plain http from another host " +
      "(open it over https, or from http://localhost, to use your GPU)."];
  }
  if (!("gpu" in navigator)) {
    return ["no-webgpu",
      "This browser has no WebGPU (Chrome or Edge 113+, Safari 26+ and Firefox 141+ have it; on Linux, " +
      "Chrome needs chrome://flags/#enable-unsafe-webgpu)."];
  }
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch (_) {
    adapter = null;
  }
  if (adapter) {
    const i = adapter.info ?? {};
    const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(" ") || "an unnamed adapter";
    browserAdapter = `${name}${i.isFallbackAdapter ? " (fallback adapter)" : ""}`;
  }
  if (!adapter) {
    return ["no-adapter",
      "WebGPU is present but offers no GPU adapter: this machine has no usable GPU, or only a software one " +
      "that the browser blocks (in Chrome or Chromium, enable chrome://flags/#enable-unsafe-webgpu or start it " +
      "with --enable-unsafe-webgpu)."];
  }
  return null;
}
