// Data-set bytes for the engine: the built-in MNIST files (fetched lazily from assets/mnist/,
// with progress, kept in memory once loaded) and files the reader drops (CIFAR-10), read
// with progress. The engine validates the bytes; this module only moves them.

const ASSETS = new URL("./assets/mnist/", import.meta.url);
const cache = new Map(); // set name → Promise<[{name, bytes}]>

/** Reads a fetch Response body, calling onBytes(n) as chunks arrive; past `cap` bytes it
 * stops reading and throws a sentence naming `what` (or `what(cap)`, a whole sentence). */
export async function readBody(res, onBytes, cap = Infinity, what = "The file") {
  const reader = res.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    if (n > cap) {
      reader.cancel().catch(() => {});
      throw new Error(typeof what === "function" ? what(cap)
        : `${what} holds more than ${(cap / 2 ** 20).toFixed(1)} MiB, the most the page reads from it.`);
    }
    onBytes(n);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A server may have decompressed a .gz on the fly (Content-Encoding): name what arrived. */
const gzipName = (name, bytes) => (bytes[0] === 0x1f && bytes[1] === 0x8b ? name : name.replace(/\.gz$/, ""));

async function fetchMnist(set, onProgress) {
  const res = await fetch(new URL("manifest.json", ASSETS));
  if (!res.ok) throw new Error(`The built-in MNIST files are missing from this build (manifest.json: HTTP ${res.status}).`);
  const manifest = await res.json();
  const entry = manifest.sets?.[set];
  if (!entry) throw new Error(`This build has no “${set}” MNIST files.`);
  const total = entry.bytes;
  let before = 0;
  const files = [];
  for (const f of entry.files) {
    const r = await fetch(new URL(`${set}/${f.name}`, ASSETS));
    if (!r.ok) throw new Error(`Downloading ${f.name} failed with HTTP ${r.status}.`);
    const bytes = await readBody(r, (n) => onProgress(Math.min(total, before + n), total));
    before += f.bytes;
    files.push({ name: gzipName(f.name, bytes), bytes });
  }
  onProgress(total, total);
  return files;
}

/**
 * The built-in MNIST files of `set` ("subset" or "full") as [{name, bytes}];
 * onProgress(loaded, total) in bytes. Downloads once per page.
 */
export function mnistFiles(set, onProgress) {
  if (!cache.has(set)) {
    const p = fetchMnist(set, onProgress);
    p.catch(() => cache.delete(set));
    cache.set(set, p);
  } else {
    onProgress(1, 1);
  }
  return cache.get(set);
}

/** Reads dropped or chosen Files as [{name, bytes}]; onProgress(loaded, total) in bytes. */
export async function readFiles(fileList, onProgress) {
  const list = [...fileList];
  const total = list.reduce((a, f) => a + f.size, 0);
  let before = 0;
  const out = [];
  for (const f of list) {
    const bytes = await readBody({ body: f.stream() }, (n) => onProgress(before + n, total));
    before += f.size;
    out.push({ name: f.name, bytes, file: f }); // file: the engine's workers read it without a copy here
  }
  onProgress(total, total);
  return out;
}
