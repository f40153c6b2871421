// CIFAR-10 without a drop: the asset `make build-web CIFAR10=…` bakes into the page (written
// here by the same script into a copy of dist/, so the suite builds the page once), `data=URL`
// (success and each failure's sentence), and dropped files that are not CIFAR-10. Data: the
// shared subset beside the clone when present, else generated records in the official layout.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT, DIST, buildIfMissing, launch, openPage } from "./harness.mjs";

const RECORD = 3073;
const TMP = mkdtempSync(join(tmpdir(), "varlab-cifar-"));
const WEB = join(TMP, "dist");
let servers = [];
let browser;

/** `count` records of the official format: labels 0–9 in turn, seeded pixels. */
function records(count, seed) {
  const bytes = Buffer.alloc(count * RECORD);
  let x = seed;
  for (let i = 0; i < bytes.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = i % RECORD === 0 ? (i / RECORD) % 10 : x >>> 24;
  }
  return bytes;
}

/** A ustar archive of `files` ({name: bytes}), gzipped. */
function tarGz(files) {
  const parts = [];
  for (const [name, bytes] of Object.entries(files)) {
    const h = Buffer.alloc(512);
    const put = (at, text) => h.write(text, at, "latin1");
    put(0, name);
    put(100, "0000644\0");
    put(108, "0000000\0");
    put(116, "0000000\0");
    put(124, `${bytes.length.toString(8).padStart(11, "0")}\0`);
    put(136, "00000000000\0");
    put(148, "        ");
    put(156, "0");
    put(257, "ustar\0" + "00");
    put(148, `${h.reduce((a, b) => a + b, 0).toString(8).padStart(6, "0")}\0 `);
    parts.push(h, bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512));
  }
  return gzipSync(Buffer.concat([...parts, Buffer.alloc(1024)]));
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".css": "text/css" };

/** A static server of WEB; /big.bin announces 300 MiB and sends a little. */
async function serve() {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path === "/big.bin") {
      res.writeHead(200, { "content-length": String(300 * 2 ** 20) });
      res.write(Buffer.alloc(65536));
      return; // the page gives up on the announced length; the socket closes with the server
    }
    const file = normalize(join(WEB, path.endsWith("/") ? path + "index.html" : path));
    if (!file.startsWith(WEB) || !existsSync(file)) return res.writeHead(404).end("not found");
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  servers.push(server);
  return `http://127.0.0.1:${server.address().port}/`;
}

let url;
let otherOrigin; // another port: another origin, which sends no CORS header
let source; // what the asset was built from, for the report

before(async () => {
  buildIfMissing();
  cpSync(DIST, WEB, { recursive: true });
  rmSync(join(WEB, "www/assets/cifar10"), { recursive: true, force: true });
  const shared = join(ROOT, "../shared/data/cifar10");
  source = shared;
  if (!existsSync(join(shared, "train.bin"))) {
    console.log("note: ../shared/data/cifar10 is absent (a bare clone): the asset is built from generated records");
    source = join(TMP, "cifar-10-batches-bin");
    mkdirSync(source);
    for (let b = 1; b <= 5; b++) writeFileSync(join(source, `data_batch_${b}.bin`), records(200, b));
    writeFileSync(join(source, "test_batch.bin"), records(200, 99));
  }
  execFileSync("node", [join(ROOT, "scripts/cifar-asset.mjs")], {
    env: { ...process.env, CIFAR10: source, CIFAR10_TRAIN: "500", CIFAR10_TEST: "100", CIFAR10_OUT: join(WEB, "www/assets/cifar10") },
    stdio: "inherit",
  });
  const data = join(WEB, "data");
  mkdirSync(data);
  const train = records(300, 7);
  const testSet = records(100, 8);
  writeFileSync(join(data, "train.bin"), train);
  writeFileSync(join(data, "test.bin"), testSet);
  writeFileSync(join(data, "cifar.tar.gz"), tarGz({ "cifar-10-batches-bin/train.bin": train, "cifar-10-batches-bin/test.bin": testSet }));
  writeFileSync(join(data, "text.bin"), "this is not CIFAR-10\n");
  writeFileSync(join(data, "notjson.json"), "<html>");
  url = await serve();
  otherOrigin = await serve();
  browser = await launch({ webgpu: false });
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.closeAllConnections?.(), s.close();
  rmSync(TMP, { recursive: true, force: true });
});

const open = (query) => openPage(browser, `${url}?${query}`, { timeout: 120_000 });
const TINY = "ds=cifar10&m=mlp&o=sgd&tr=64&te=32&e=1&b=32&sp=0.5&n=1&x=cpu";

test("a page built with CIFAR10= offers the built-in set and trains a CIFAR config on it with no drop", async () => {
  const { page, console: logs } = await open(TINY);
  assert.equal(await page.locator('#f-dataset option[value="cifar10"]').textContent(), "CIFAR-10 (built in, 500 + 100 images)");
  assert.match(await page.locator("#cifar-info").textContent(), /^Built in: 500 training and 100 test images \(\d\.\d MB, downloaded at Run\)/);
  await page.click("#run-btn");
  await page.waitForFunction(() => ["done", "error", "cancelled"].includes(window.__varlab.run) || /rror/.test(document.querySelector("#status").className),
    null, { timeout: 300_000 });
  const v = await page.evaluate(() => ({ run: window.__varlab.run, errors: window.__varlab.errors, status: document.querySelector("#status-text").textContent }));
  assert.equal(v.run, "done", `${v.status} ${v.errors.join(" / ")}\n${logs.join("\n")}`);
  assert.equal(await page.evaluate(() => window.__varlab.result.config.dataset), "cifar10");
  assert.equal(await page.evaluate(() => window.__varlab.cifar), null); // nothing dropped or fetched
  await page.close();
});

test("data= reads .bin files, a tarball and an asset's manifest from a URL", async () => {
  for (const [data, counts] of [["data/train.bin,data/test.bin", [300, 100]], ["data/cifar.tar.gz", [300, 100]],
    ["www/assets/cifar10/manifest.json", [500, 100]]]) {
    const { page } = await open(`ds=cifar10&data=${data}`);
    await page.waitForFunction(() => window.__varlab.cifar !== null, null, { timeout: 60_000 });
    assert.deepEqual(await page.evaluate(() => window.__varlab.cifar), { dataset: "cifar10", train: counts[0], test: counts[1] }, data);
    assert.equal(await page.locator("#cifar-info").textContent(), `CIFAR-10 ready: ${counts[0]} training and ${counts[1]} test images.`);
    await page.close();
  }
});

test("each data= failure is one sentence on the page", async () => {
  const cases = [
    ["data/missing.bin", /could not be fetched: HTTP 404/],
    [`${otherOrigin}data/test.bin`, /does not let this page read it \(CORS\)/],
    ["big.bin", /is 314\.6 MB, more than the 268\.4 MB the page downloads/],
    ["data/text.bin", /holds 21 bytes, which is not a whole number of 3073-byte records/],
    ["data/notjson.json", /is not JSON, so not a CIFAR-10 asset manifest/],
    ["file:///etc/passwd", /takes http or https addresses only/],
  ];
  for (const [data, want] of cases) {
    const { page } = await open(`ds=cifar10&data=${encodeURIComponent(data)}`);
    await page.waitForFunction(() => window.__varlab.cifar?.error, null, { timeout: 60_000 });
    const messages = await page.locator("#messages").textContent();
    assert.match(messages, want, data);
    assert.match(messages, /^The data= files cannot be used: [^\n]+\.$/, data);
    assert.equal(await page.locator("#run-btn").isEnabled(), true);
    await page.close();
  }
});

test("dropped MNIST files and a lone broken .bin are each named by their defect", async () => {
  const { page } = await open("ds=cifar10");
  const mnist = join(WEB, "www/assets/mnist/subset");
  const drop = async (files, want) => {
    await page.evaluate(() => (window.__varlab.cifar = null));
    await page.setInputFiles("#cifar-files", files.map(([name, buffer]) => ({ name, mimeType: "application/octet-stream", buffer })));
    await page.waitForFunction(() => window.__varlab.cifar?.error, null, { timeout: 60_000 });
    assert.match(await page.locator("#cifar-info").textContent(), want, files.map((f) => f[0]).join(" "));
  };
  const idx = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
  await drop(idx.map((n) => [`${n}.gz`, readFileSync(join(mnist, `${n}.gz`))]), /These files hold MNIST, not the CIFAR-10 asked for\./);
  const label12 = records(1, 3);
  label12[0] = 12;
  for (const [bytes, want] of [[Buffer.alloc(0), /holds no images/], [records(2, 1).subarray(0, 2 * RECORD - 5), /3068 bytes left over/],
    [label12, /label 12 at index 0/], [Buffer.from([3]), /holds 1 bytes/], [Buffer.from("hello, world\n"), /holds 13 bytes/]]) {
    await drop([["test_batch.bin", bytes]], want);
  }
  await page.close();
});
