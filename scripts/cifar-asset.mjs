// Build step (a trunk pre_build hook): with CIFAR10=PATH (the official cifar-10-binary.tar.gz,
// or a directory of its .bin files, or of a subset's train.bin and test.bin), writes a
// class-balanced subset of CIFAR-10 into www/assets/cifar10/ (gitignored; trunk copies www/
// into dist/), which the page fetches only when a CIFAR-10 run needs it:
//   train.vlc.gz, test.vlc.gz  the records, pre-filtered (www/cifar-codec.js), gzipped
//   manifest.json  source file, image counts, bytes on the wire and decoded, sha256 of the
//                  decoded records (the official binary format the engine parses)
// CIFAR10_TRAIN and CIFAR10_TEST set the image counts (defaults below: ≤ 10 MB on the wire).
// The subset takes the first images of each class in turn (class 0, 1, …, 9, 0, …), so every
// prefix a config's train_size takes is balanced too. Without CIFAR10 the asset is removed.
// Idempotent: an asset made from the same source and counts is kept.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, renameSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename, join, resolve } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { RECORD, encodeRecords, decodeRecords } from "../www/cifar-codec.js";

const ROOT = resolve(import.meta.dirname, "..");
const OUT = process.env.CIFAR10_OUT ?? join(ROOT, "www", "assets", "cifar10"); // CIFAR10_OUT: tests
const TRAIN = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
const DEFAULTS = { train: 5000, test: 1000 };

const fail = (msg) => {
  console.error(`[cifar-asset] ${msg}`);
  process.exit(1);
};

/** The regular files of a tar archive (ustar or GNU): Map base name → bytes. */
function untar(tar) {
  const files = new Map();
  for (let at = 0; at + 512 <= tar.length; ) {
    const h = tar.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const text = (o, n) => h.subarray(o, o + n).toString("latin1").replace(/\0.*$/s, "");
    const size = parseInt(text(124, 12).trim() || "0", 8);
    if (!Number.isFinite(size)) fail("the tarball has a damaged header.");
    const name = text(345, 155) ? `${text(345, 155)}/${text(0, 100)}` : text(0, 100);
    const type = text(156, 1);
    if (type === "0" || type === "") files.set(basename(name), tar.subarray(at + 512, at + 512 + size));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Training and test records (Buffers) from PATH. */
function source(path) {
  let files;
  if (statSync(path).isDirectory()) {
    files = new Map(readdirSync(path).filter((n) => n.endsWith(".bin")).map((n) => [n, readFileSync(join(path, n))]));
  } else {
    try {
      files = untar(gunzipSync(readFileSync(path)));
    } catch (e) {
      fail(`${path} is not a gzipped tarball (${e.message}); give cifar-10-binary.tar.gz or a directory of its .bin files.`);
    }
  }
  const [train, test] = TRAIN.every((n) => files.has(n)) && files.has("test_batch.bin")
    ? [TRAIN, "test_batch.bin"]
    : files.has("train.bin") && files.has("test.bin") ? [["train.bin"], "test.bin"] : fail(
      `${path} lacks the CIFAR-10 batches (data_batch_1.bin … data_batch_5.bin and test_batch.bin, or train.bin and test.bin).`);
  for (const [n, b] of files) if (b.length % RECORD) fail(`${n} is not a whole number of ${RECORD}-byte records.`);
  return { train: Buffer.concat(train.map((n) => files.get(n))), test: files.get(test) };
}

/** `count` records of `records`, class-balanced, in turns of class 0 … 9. */
function balanced(records, count, what) {
  const byClass = Array.from({ length: 10 }, () => []);
  for (let i = 0; i < records.length / RECORD; i++) {
    const label = records[i * RECORD];
    if (label > 9) fail(`${what} record ${i} has label ${label}, out of range for 10 classes.`);
    byClass[label].push(i);
  }
  const pick = [];
  for (let k = 0; pick.length < count; k++) {
    if (byClass.every((c) => k >= c.length)) fail(`the ${what} records hold only ${pick.length} images, fewer than the ${count} asked for.`);
    for (let c = 0; c < 10 && pick.length < count; c++) if (k < byClass[c].length) pick.push(byClass[c][k]);
  }
  return Buffer.concat(pick.map((i) => records.subarray(i * RECORD, (i + 1) * RECORD)));
}

function writeAtomic(path, bytes) {
  writeFileSync(path + ".tmp", bytes);
  renameSync(path + ".tmp", path);
}

function main() {
  const path = process.env.CIFAR10;
  if (!path) {
    if (existsSync(OUT)) rmSync(OUT, { recursive: true, force: true });
    return;
  }
  const count = (name, def) => {
    const v = process.env[name] ?? String(def);
    if (!/^[1-9]\d*$/.test(v)) fail(`${name}=${v} is not a positive whole number of images.`);
    return Number(v);
  };
  const counts = { train: count("CIFAR10_TRAIN", DEFAULTS.train), test: count("CIFAR10_TEST", DEFAULTS.test) };
  if (!existsSync(path)) fail(`CIFAR10=${path}: no such file or directory.`);
  const st = statSync(path);
  // The source's identity, hashed: the manifest is published and must not show local paths.
  const key = createHash("sha256").update(JSON.stringify([resolve(path), st.size, st.mtimeMs, counts])).digest("hex").slice(0, 16);
  const manifestPath = join(OUT, "manifest.json");
  if (existsSync(manifestPath) && JSON.parse(readFileSync(manifestPath)).key === key) return;
  const src = source(path);
  const subset = { train: balanced(src.train, counts.train, "train"), test: balanced(src.test, counts.test, "test") };
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const files = [];
  for (const split of ["train", "test"]) {
    const records = subset[split];
    const name = `${split}.vlc.gz`;
    const wire = gzipSync(encodeRecords(records), { level: 9 });
    if (Buffer.compare(Buffer.from(decodeRecords(gunzipSync(wire))), records) !== 0) fail("the encoding does not round-trip (a bug).");
    writeAtomic(join(OUT, name), wire);
    const sha256 = createHash("sha256").update(records).digest("hex");
    files.push({ name, split, as: `${split}.bin`, images: counts[split], bytes: wire.length, decoded_bytes: records.length, sha256 });
  }
  const bytes = files.reduce((a, f) => a + f.bytes, 0);
  const decoded = files.reduce((a, f) => a + f.decoded_bytes, 0);
  const manifest = { source: basename(resolve(path)), encoding: "cifar-codec (LOCO-I residuals of G, R-G, B-G), gzip", ...counts, bytes, files, key };
  writeAtomic(manifestPath, JSON.stringify(manifest, null, 1) + "\n");
  console.log(`[cifar-asset] wrote ${counts.train} training and ${counts.test} test images from ${manifest.source}: ` +
    `${bytes} bytes on the wire (${(bytes / decoded).toFixed(3)} of the records)`);
  if (bytes > 10e6) console.warn(`[cifar-asset] note: that is above 10 MB; fewer images (CIFAR10_TRAIN) download faster.`);
}

main();
