// CIFAR-10 on the page, from three sources: files the reader drops (the drop zone), files
// fetched from `data=URL` (a tarball, .bin files, or an asset's manifest.json), and the asset
// built into this page (`make build-web CIFAR10=…`, scripts/cifar-asset.mjs), fetched only
// when a run needs it. Dropped or fetched files win over the built-in ones. The engine
// (`parse_dataset`, and each worker) validates every byte; this module moves and counts them.

import { readBody, readFiles } from "./data.js";
import { RECORD, decodeRecords } from "./cifar-codec.js";

const ASSET = new URL("./assets/cifar10/manifest.json", import.meta.url);
/** The most one `data=` download may hold (the official tarball is 162 MiB), and a manifest. */
const MAX_DOWNLOAD = 256 * 2 ** 20;
const MAX_MANIFEST = 64 * 2 ** 10;
const n = (x) => x.toLocaleString("en").replaceAll(",", " ");
const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
const sentence = (e) => (e && e.message ? e.message : String(e));

let ctx = null; // { wasm(), page, say(text) } from cifarZone
let given = null; // { files, info } of dropped or fetched files once checked
let loading = null; // Promise of the same while a data= download runs
let builtIn = null; // { manifest, url }: this build's asset, else null
let builtInFiles = null; // Promise of its decoded files, once asked for

/** Whether this build has the CIFAR-10 asset: reads its manifest (a few hundred bytes). */
export async function probeBuiltIn() {
  try {
    const res = await fetch(ASSET);
    if (res.ok) builtIn = { manifest: checkManifest(await res.json()), url: ASSET };
  } catch (_) {
    builtIn = null; // no asset: the page is the drop-only page
  }
  return builtIn && { train: builtIn.manifest.train, test: builtIn.manifest.test, bytes: builtIn.manifest.bytes };
}

/** The menu's words for the built-in data set, or null without one. */
export const builtInWords = () =>
  builtIn && `CIFAR-10 (built in, ${n(builtIn.manifest.train)} + ${n(builtIn.manifest.test)} images)`;

/** A manifest's fields checked before any of them is used (a data= one comes from anywhere). */
function checkManifest(m) {
  const files = Array.isArray(m?.files) ? m.files : [];
  const ok = files.length === 2 && files.every((f) => /^[\w.-]+$/.test(f.name) && ["train.bin", "test.bin"].includes(f.as)
    && [f.bytes, f.decoded_bytes, f.images].every((v) => Number.isSafeInteger(v) && v > 0 && v <= MAX_DOWNLOAD)
    && typeof f.sha256 === "string");
  if (!ok) throw new Error("The manifest does not describe a CIFAR-10 asset (two files, train.bin and test.bin, with their sizes).");
  return m;
}

/** `url`'s body with progress, at most `cap` bytes; failures as sentences naming `what`. */
async function download(url, what, cap, onBytes) {
  let res;
  try {
    res = await fetch(url);
  } catch (_) {
    throw new Error(`${what} could not be fetched: the server did not answer, or it does not let this page read it (CORS).`);
  }
  if (!res.ok) throw new Error(`${what} could not be fetched: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}.`);
  const length = Number(res.headers.get("content-length"));
  if (length > cap) throw new Error(`${what} is ${mb(length)}, more than the ${mb(cap)} the page downloads for it.`);
  return readBody(res, (k) => onBytes(k, length || 0), cap, what);
}

/** gzip bytes inflated by the browser, at most `cap` bytes. */
async function gunzip(bytes, cap, what) {
  try {
    return await readBody(new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))), () => {}, cap, what);
  } catch (e) {
    throw e instanceof TypeError ? new Error(`${what} is not valid gzip (${e.message}).`) : e;
  }
}

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** The records of an asset (`manifest` at `url`) as [{name, bytes}]; onProgress(loaded, total). */
async function fetchAsset({ manifest, url }, onProgress) {
  let before = 0;
  const files = [];
  for (const f of manifest.files) {
    const what = `The CIFAR-10 file ${f.name}`;
    let bytes = await download(new URL(f.name, url), what, f.decoded_bytes, (k) => onProgress(Math.min(before + k, manifest.bytes), manifest.bytes));
    before += f.bytes;
    // A server may inflate a .gz on the fly (Content-Encoding): then the bytes come plain.
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = await gunzip(bytes, f.decoded_bytes, what);
    if (bytes.length !== f.decoded_bytes) throw new Error(`${what} holds ${bytes.length} bytes once inflated, not the ${f.decoded_bytes} its manifest says.`);
    const records = new Uint8Array(bytes.length);
    for (let k = 0; k < bytes.length / RECORD; k += 500) {
      decodeRecords(bytes, records, k, Math.min(k + 500, Math.floor(bytes.length / RECORD)));
      await new Promise((ok) => setTimeout(ok)); // a task per slice (≈ 35 ms)
    }
    if (crypto.subtle && hex(await crypto.subtle.digest("SHA-256", records)) !== f.sha256) {
      throw new Error(`${what} does not match its checksum: it was damaged on the way; rebuild or reload the page.`);
    }
    files.push({ name: f.as, bytes: records });
  }
  onProgress(1, 1);
  return files;
}

const NAMES = { cifar10: "CIFAR-10", cifar100: "CIFAR-100" };

/** The files a run on `dataset` (cifar10 or cifar100) trains on: dropped or fetched ones, else
 * the built-in CIFAR-10 asset. */
export async function cifarFiles(dataset, onProgress) {
  if (loading) await loading.catch(() => {});
  if (given) return given.files;
  if (!builtIn || dataset !== "cifar10") throw new Error(`Drop the ${NAMES[dataset] ?? dataset} files on the page first (Settings → Data).`);
  builtInFiles ??= fetchAsset(builtIn, onProgress).catch((e) => {
    builtInFiles = null;
    throw e;
  });
  return builtInFiles;
}

/** {train, test, bytes} of the CIFAR-10 files a run would use, or null (for sizing workers). */
export function cifarInfo() {
  if (given) return { ...given.info, bytes: given.files.reduce((a, f) => a + f.bytes.length, 0) };
  const m = builtIn?.manifest;
  return m ? { train: m.train, test: m.test, bytes: m.files.reduce((a, f) => a + f.decoded_bytes, 0) } : null;
}

// ---------- the drop zone ----------

const $ = (id) => document.getElementById(id);

function el(tag, text, props = {}) {
  const e = Object.assign(document.createElement(tag), props);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** What the zone says when nothing was dropped. */
const restingText = () => builtIn
  ? `Built in: ${n(builtIn.manifest.train)} training and ${n(builtIn.manifest.test)} test images (${mb(builtIn.manifest.bytes)}, downloaded at Run). Drop the full set to use more.`
  : "";

/** The drop zone; `c`: { wasm: () => the engine, page: window.__varlab, say(text), dataset: () => the config's }. */
export function cifarZone(c) {
  ctx = c;
  const zone = el("div", undefined, { className: "dropzone", id: "cifar-zone" });
  const label = el("label", "Drop cifar-10-binary.tar.gz or cifar-100-binary.tar.gz (or their .bin files) here, or choose them: ", { htmlFor: "cifar-files" });
  const input = el("input", undefined, { type: "file", id: "cifar-files", multiple: true, accept: ".gz,.bin,.tar" });
  const bar = el("progress", undefined, { max: 1, value: 0, hidden: true, id: "cifar-bar" });
  bar.setAttribute("aria-label", "Reading the CIFAR-10 files");
  const out = el("p", restingText(), { className: "dropinfo", id: "cifar-info" });
  out.setAttribute("role", "status");
  zone.append(label, input, bar, out);
  input.addEventListener("change", () => input.files.length && take((p) => readFiles(input.files, p), "Those files cannot be used"));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = e.dataTransfer.files;
    if (files.length) take((p) => readFiles(files, p), "Those files cannot be used");
  });
  return zone;
}

/** Reads files with `read(onProgress)`, has the engine check them, and says what came of it. */
async function take(read, failure) {
  const bar = $("cifar-bar");
  const out = $("cifar-info");
  given = null;
  ctx.page.cifar = null;
  out.className = "dropinfo";
  out.textContent = "Reading…";
  bar.hidden = false;
  bar.value = 0;
  try {
    const files = await read((k, total) => {
      bar.value = total ? k / total : 1;
    });
    const wasm = ctx.wasm();
    if (!wasm?.parse_dataset) throw new Error("The engine is not loaded, so the files cannot be checked.");
    // The data set the settings ask for (CIFAR-10 while they say MNIST): files of another are refused.
    const want = ctx.dataset?.() === "cifar100" ? "cifar100" : "cifar10";
    const info = JSON.parse(await wasm.parse_dataset(files, want));
    given = { files, info };
    ctx.page.cifar = info;
    out.textContent = `${NAMES[info.dataset] ?? info.dataset} ready: ${info.train} training and ${info.test} test images.`;
  } catch (e) {
    out.className = "dropinfo error";
    out.textContent = `${failure}: ${sentence(e)}`;
    ctx.page.cifar = { error: sentence(e) };
    return out.textContent;
  } finally {
    bar.hidden = true;
  }
  return null;
}

/** `data=` URLs: a manifest.json (an asset), or a tarball and/or .bin files; read with the
 * zone's progress bar, checked by the engine; a failure is one sentence on the page. */
export function fetchData(urls) {
  if (!urls.length) return;
  loading = take(async (onProgress) => {
    const where = urls.map((u) => new URL(u, location.href));
    if (where.some((u) => !["http:", "https:"].includes(u.protocol))) throw new Error("data= takes http or https addresses only.");
    if (where.some((u) => u.pathname.endsWith(".json"))) {
      if (where.length > 1) throw new Error("data= takes one manifest.json, or data files, not both.");
      const text = new TextDecoder().decode(await download(where[0], `The manifest ${where[0].href}`, MAX_MANIFEST, () => {}));
      let manifest;
      try {
        manifest = JSON.parse(text);
      } catch (_) {
        throw new Error(`${where[0].href} is not JSON, so not a CIFAR-10 asset manifest.`);
      }
      return fetchAsset({ manifest: checkManifest(manifest), url: where[0] }, onProgress);
    }
    const files = [];
    for (const [i, u] of where.entries()) {
      const bytes = await download(u, u.href, MAX_DOWNLOAD, (k, total) => onProgress(i + (total ? Math.min(k / total, 1) : 0.5), where.length));
      let name = decodeURIComponent(u.pathname.split("/").pop() || "data");
      if (bytes[0] === 0x1f && bytes[1] === 0x8b && !/\.(gz|tgz)$/.test(name)) name += ".tar.gz";
      files.push({ name, bytes });
    }
    return files;
  }, "The data= files cannot be used").then((failed) => failed && ctx.say(failed));
}
