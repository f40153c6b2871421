// Unit tests of the page's DOM-free modules (www/state.js, www/results.js) under node. No
// wasm here: the engine's config schema comes from the CLI (`varlab config --schema`, the same
// JSON as the wasm's `config_schema()`), adopted as the page adopts it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { defaults, fromQuery, toQuery, setField, normalise, applyConfig, configOf, adoptSchema, adoptDefaults, adoptPresets, presetState,
  PRESETS, FIELDS, UI_FIELDS, OPTIMIZERS, OPTIMIZER_NAMES, DATASETS, MNIST_SETS, field } from "../../www/state.js";
import { checkResult, summarise, formatCell, mergeParts, meanStd, statsInput, pairedRows, formatPaired, lambdaSummary, hasStats }
  from "../../www/results.js";

const ROOT = resolve(import.meta.dirname, "../..");
const VARLAB = join(ROOT, "target/debug/varlab");
if (!existsSync(VARLAB)) execFileSync("cargo", ["build", "--quiet", "--bin", "varlab"], { cwd: ROOT, stdio: "inherit" });
const SCHEMA = JSON.parse(execFileSync(VARLAB, ["config", "--schema"], { encoding: "utf8" }));
adoptSchema(SCHEMA);
/** The engine's entry for field `key`. */
const spec = (key) => SCHEMA.fields.find((f) => f.key === key);

const fixture = () => JSON.parse(readFileSync(join(import.meta.dirname, "fixtures/results-small.json"), "utf8"));

test("the defaults before the presets are the schema's: a version-1 config that makes an empty query", () => {
  const s = defaults();
  assert.equal(s.config.version, SCHEMA.version);
  assert.equal(s.config.version, 1);
  for (const f of SCHEMA.fields) assert.deepEqual(s.config[f.key], f.default, f.key);
  assert.equal(s.ui.preset, null); // no presets before the engine's are adopted
  assert.equal(toQuery(s), "");
  assert.equal(Object.keys(configOf(s)).length, SCHEMA.fields.length + 1);
});

test("the page's fields are the engine's schema: same keys, limits, options and defaults; only UI_FIELDS besides", () => {
  assert.deepEqual(FIELDS.map((f) => f.key), SCHEMA.fields.map((f) => f.key));
  for (const s of SCHEMA.fields) {
    const f = field(s.key);
    assert.ok(FIELDS.includes(f), s.key);
    assert.equal(field(s.short), f, s.short);
    for (const k of ["short", "type", "min", "max", "max_items", "nullable", "options", "group", "label", "help"]) {
      assert.deepEqual(f[k], s[k], `${s.key}.${k}`);
    }
    assert.deepEqual(f.def, s.default, `${s.key} default`);
  }
  // Page-only fields are UI_FIELDS alone, with URL keys of their own, and stay out of the config.
  const keys = [...FIELDS, ...UI_FIELDS].flatMap((f) => [...new Set([f.key, f.short])]);
  assert.equal(new Set(keys).size, keys.length, "URL keys are unique");
  for (const u of UI_FIELDS) assert.equal(u.key in configOf(defaults()), false, u.key);
  assert.deepEqual(Object.keys(configOf(defaults())).sort(), ["version", ...SCHEMA.fields.map((f) => f.key)].sort());
  // The optimizers, their display names, the models and the data sets' sizes are the engine's.
  assert.deepEqual(OPTIMIZERS, SCHEMA.optimizers);
  assert.deepEqual(OPTIMIZER_NAMES, Object.fromEntries(SCHEMA.optimizers.map((o) => [o.name, o.display])));
  assert.deepEqual(field("optimizers").options, SCHEMA.optimizers.map((o) => o.name));
  assert.deepEqual(field("model").options, SCHEMA.models);
  assert.deepEqual(DATASETS, SCHEMA.datasets);
  assert.deepEqual(MNIST_SETS.full, SCHEMA.datasets.mnist);
  // Issue 25's additions reach the page through the schema alone.
  assert.equal(OPTIMIZER_NAMES.s2sam, "S²-SAM");
  assert.ok(field("model").options.includes("resnet18"));
  assert.deepEqual(field("dataset").options, ["mnist", "cifar10", "cifar100"]);
  assert.deepEqual(DATASETS.cifar100, { train: 50000, test: 10000 });
  // setField applies exactly those limits (and, for the image counts, the data set's size).
  const cap = { train_size: DATASETS.mnist.train, test_size: DATASETS.mnist.test };
  for (const s of SCHEMA.fields) {
    const st = defaults();
    if (s.type === "int" || s.type === "float") {
      const hi = Math.min(s.max, cap[s.key] ?? Infinity);
      assert.equal(setField(st, s.key, s.max + 1), `${s.key} ${s.max + 1} is above the maximum ${hi}; using ${hi}.`);
      assert.equal(st.config[s.key], hi, s.key);
      assert.equal(setField(st, s.key, s.min), null, s.key);
      assert.match(setField(st, s.key, s.min - 1), new RegExp(`below the minimum ${s.min};`), s.key);
      assert.equal(st.config[s.key], s.min, s.key);
    } else if (s.type === "list") {
      assert.equal(setField(st, s.key, [s.min, s.max]), null, s.key);
      assert.deepEqual(st.config[s.key], [s.min, s.max]);
      assert.match(setField(st, s.key, [s.max + 0.01, s.min]), /dropped/, s.key);
      const many = Array.from({ length: s.max_items + 1 }, (_, i) => s.min + ((s.max - s.min) * i) / s.max_items);
      assert.match(setField(st, s.key, many), new RegExp(`at most ${s.max_items} values`), s.key);
      assert.equal(st.config[s.key].length, s.max_items);
    } else if (s.type === "enum" || s.type === "set") {
      for (const o of s.options) assert.equal(setField(st, s.key, s.type === "set" ? [o] : o), null, `${s.key}=${o}`);
      assert.match(setField(st, s.key, "no-such-thing"), s.type === "set" ? /choose at least one/ : /is not one of/, s.key);
      if (s.type === "set") {
        assert.equal(setField(st, s.key, s.options), null);
        assert.deepEqual(st.config[s.key], s.options.slice(0, s.max_items));
      }
    }
  }
});

test("no page module names an optimizer: the schema's list is the only one", () => {
  const www = join(ROOT, "www");
  // "var" is also the name of the Var |w| chart (views.js, app.js), not the optimizer.
  const names = SCHEMA.optimizers.map((o) => o.name).filter((n) => n !== "var");
  for (const file of readdirSync(www).filter((f) => f.endsWith(".js"))) {
    const text = readFileSync(join(www, file), "utf8");
    for (const n of names) {
      for (const q of ['"', "'", "`"]) assert.ok(!text.includes(`${q}${n}${q}`), `${file} names the optimizer ${q}${n}${q}`);
      assert.ok(!new RegExp(`[{,]\\s*${n.replace("+", "\\+")}:`).test(text), `${file} keys an object by ${n}`);
    }
  }
});

test("a query round-trips through the state with short keys", () => {
  const q = "m=mlp&o=sgd,var,sam+var&lr=0.1&e=1&b=32&sp=0.5,0.9&kf=1&x=cpu&embed=1&hide=table,lambda&autoplay=1";
  const { state, messages } = fromQuery(q);
  assert.deepEqual(messages, []);
  assert.equal(state.config.model, "mlp");
  assert.deepEqual(state.config.optimizers, ["sgd", "var", "sam+var"]);
  assert.equal(state.config.keep_first, true);
  assert.deepEqual(state.ui.hide, ["table", "lambda"]);
  assert.equal(fromQuery(toQuery(state)).state.config.lr, 0.1);
  assert.deepEqual(fromQuery(toQuery(state)).state, state);
});

test("out-of-range values are clamped and bad ones refused, each with a sentence", () => {
  const { state, messages } = fromQuery("lr=50&b=0&e=2.6&m=<img src=x>&o=nope&sp=0.9,2,abc,0.5,0.9&wu=5000&zz=1&hide=bogus,table");
  assert.equal(state.config.lr, 10);
  assert.equal(state.config.batch, 1);
  assert.equal(state.config.epochs, 3);
  assert.equal(state.config.model, spec("model").default);
  assert.deepEqual(state.config.optimizers, spec("optimizers").default);
  assert.deepEqual(state.config.sparsities, [0.5, 0.9]);
  const wu = spec("warmup_epochs").max;
  assert.equal(state.config.warmup_epochs, wu); // the engine's limit, not the epochs
  assert.deepEqual(state.ui.hide, ["table"]);
  const text = messages.join("\n");
  for (const want of ["lr 50 is above the maximum 10", "batch 0 is below the minimum 1", "epochs must be a whole number",
    "model: “<img src=x>” is not one of", "optimizers: choose at least one", "sparsities: dropped 2, abc",
    `warmup_epochs 5000 is above the maximum ${wu}`, "Unknown URL parameter “zz”", "hide: ignored unknown bogus"]) {
    assert.ok(text.includes(want), `missing “${want}” in:\n${text}`);
  }
  // The page's limits are the engine's: 500 epochs, a batch of 2000 and a warm-up longer than
  // the training are accepted as the engine accepts them; past its maxima, clamped.
  const big = fromQuery("e=500&b=2000&wu=600");
  assert.deepEqual(big.messages, []);
  assert.deepEqual([big.state.config.epochs, big.state.config.batch, big.state.config.warmup_epochs], [500, 2000, 600]);
  const over = fromQuery(`e=${spec("epochs").max + 1}&n=${spec("seeds").max + 1}`);
  assert.equal(over.state.config.epochs, spec("epochs").max);
  assert.equal(over.state.config.seeds, spec("seeds").max);
  assert.match(over.messages.join("\n"), new RegExp(`seeds ${spec("seeds").max + 1} is above the maximum ${spec("seeds").max}`));
});

test("large MNIST subsets switch to the full files; the data set's size caps the image counts", () => {
  const a = fromQuery("tr=20000");
  assert.equal(a.state.ui.mnist_files, "full");
  assert.match(a.messages.join(), /switched to the full MNIST files/);
  const b = fromQuery("ds=cifar10&tr=60000&te=20000");
  assert.equal(b.state.config.train_size, DATASETS.cifar10.train);
  assert.equal(b.state.config.test_size, DATASETS.cifar10.test);
  assert.match(b.messages.join("\n"), new RegExp(`train_size 60000 is above the maximum ${DATASETS.cifar10.train}`));
  const m = fromQuery("tr=70000");
  assert.equal(m.state.config.train_size, DATASETS.mnist.train);
  // Switching the data set re-checks the counts (normalise).
  const c = fromQuery("tr=60000");
  c.state.config.dataset = "cifar10";
  assert.match(normalise(c.state).join(), /train_size 60000 is above the maximum 50000/);
  assert.equal(c.state.config.train_size, DATASETS.cifar10.train);
  const s = defaults();
  assert.equal(setField(s, "seeds", "3"), null);
  assert.match(setField(s, "seeds", "x"), /not a number; kept 3/);
  assert.deepEqual(applyConfig(s, { model: "resnet8", lr: -1 }), ["lr -1 is below the minimum 0.000001; using 0.000001."]);
});

test("results: checking, mean ± std over seeds and merged parts", () => {
  const r = checkResult(fixture());
  const { sparsities, rows } = summarise(r);
  assert.deepEqual(sparsities, [0.5, 0.9, 0.99]);
  assert.deepEqual(rows.map((x) => x.optimizer), ["sgd", "var"]);
  const sgd90 = r.runs.filter((x) => x.optimizer === "sgd").map((x) => x.sweep[1].accuracy);
  const ms = meanStd(sgd90);
  assert.equal(rows[0].at[1].mean, (sgd90[0] + sgd90[1]) / 2);
  assert.ok(Math.abs(ms.std - Math.abs(sgd90[0] - sgd90[1]) / Math.SQRT2) < 1e-12);
  assert.equal(formatCell({ mean: 0.5, std: 0.01, n: 2 }), "50.00 ± 1.00");
  assert.equal(formatCell({ mean: 0.97125, std: 0, n: 1 }), "97.13");
  const merged = mergeParts(r.config, [{ environment: { executor: "gpu" }, runs: r.runs.slice(0, 1) },
    { environment: { executor: "cpu" }, runs: r.runs.slice(1) }]);
  assert.equal(merged.environment.executor, "gpu+cpu");
  assert.equal(merged.runs.length, 4);
  assert.throws(() => checkResult({ version: 2, runs: [] }), /version 2/);
  assert.throws(() => checkResult({ version: 1, runs: [{ optimizer: "sgd", dense_accuracy: 7, sweep: [] }] }), /fraction/);
});

test("the engine's defaults become the page's, where the page accepts them", () => {
  const before = FIELDS.map((f) => f.def);
  try {
    adoptDefaults({ ...defaults().config, lambda: 5e-4, batch: 99999, model: "resnet8" });
    const s = defaults();
    assert.equal(s.config.lambda, 5e-4);
    assert.equal(s.config.model, "resnet8");
    assert.equal(s.config.batch, spec("batch").default); // out of the engine's range: the schema's default stays
    assert.equal(toQuery(s), "");
  } finally {
    FIELDS.forEach((f, i) => (f.def = before[i]));
  }
});

test("λψ₀ (lp) and the initialisation (in) round-trip through the URL; a blank λψ₀ is written lp=off", () => {
  const a = fromQuery("lp=0.7&in=kaiming-normal&m=cnn");
  assert.deepEqual(a.messages, []);
  assert.equal(a.state.config.lambda_psi0, 0.7);
  assert.equal(a.state.config.init, "kaiming-normal");
  assert.equal(a.state.config.model, "cnn");
  assert.equal(toQuery(a.state), "m=cnn&in=kaiming-normal&lp=0.7");
  assert.deepEqual(fromQuery(toQuery(a.state)).state, a.state);
  // null = "use λ as given": blank, off, null or none read as null; it is written "off".
  for (const q of ["lp=off", "lp=", "lp=OFF", "lp=null", "lp=none", "lambda_psi0=off"]) {
    const b = fromQuery(`${q}&l=0.0005`);
    assert.deepEqual(b.messages, [], q);
    assert.equal(b.state.config.lambda_psi0, null, q);
    assert.equal(toQuery(b.state), "l=0.0005&lp=off", q);
    assert.deepEqual(fromQuery(toQuery(b.state)).state, b.state, q);
    assert.equal(JSON.parse(JSON.stringify(configOf(b.state))).lambda_psi0, null, "null reaches the engine as null");
  }
  // Out of range, not a number, unknown init: clamped or refused with a sentence.
  const c = fromQuery("lp=500&in=xavier");
  assert.equal(c.state.config.lambda_psi0, 100);
  assert.equal(c.state.config.init, "pytorch");
  assert.match(c.messages.join("\n"), /lambda_psi0 500 is above the maximum 100; using 100\./);
  assert.match(c.messages.join("\n"), /init: “xavier” is not one of pytorch, kaiming-normal; kept pytorch\./);
  const s = defaults();
  assert.match(setField(s, "lambda_psi0", "abc"), /not a number \(leave it blank, or “off”, to do without\); kept 1\.4/);
  assert.equal(setField(s, "lambda_psi0", ""), null); // a cleared form field
  assert.equal(s.config.lambda_psi0, null);
  assert.match(setField(s, "lambda", ""), /not a number; kept 0\.0001/); // λ itself is not nullable
  // A file that gives λ but not λψ₀ (written before λψ₀ existed) means that λ, as the engine reads it.
  const d = defaults();
  assert.deepEqual(applyConfig(d, { lambda: 5e-4 }), []);
  assert.equal(d.config.lambda_psi0, null);
  assert.equal(d.config.init, "kaiming-normal"); // without `init` too: trained before it existed
  const e = defaults();
  assert.deepEqual(applyConfig(e, { lambda: 5e-4, init: "pytorch" }), []);
  assert.deepEqual([e.config.lambda_psi0, e.config.init], [null, "pytorch"]);
  assert.deepEqual(applyConfig(d, { lambda: 5e-4, lambda_psi0: 2, init: "pytorch" }), []);
  assert.deepEqual([d.config.lambda_psi0, d.config.init], [2, "pytorch"]);
});

/** Presets shaped like the engine's presets() (hand-made: no wasm under node). */
function fakePresets() {
  const base = { ...defaults().config, lr: 0.05, warmup_epochs: 0, lambda: 1e-4, lambda_psi0: 1.4, init: "pytorch" };
  return [
    { id: "mlp", title: "MLP", about: "first", config: { ...base, model: "mlp", train_size: 4000, test_size: 1000, epochs: 3, seeds: 4,
      sparsities: [0.5, 0.8, 0.9, 0.95, 0.98, 0.99] } },
    { id: "lenet5", title: "LeNet-5", about: "second", config: { ...base, model: "lenet5", epochs: 3, seeds: 4 } },
    { id: "cifar-cnn", title: "CNN", about: "third", config: { ...base, dataset: "cifar10", model: "cnn", augment: true, epochs: 5,
      batch: 128, seeds: 4, sparsities: [0.5, 0.7, 0.8, 0.9, 0.95, 0.98] } },
    { id: "kaiming", title: "K", about: "fourth", config: { ...base, init: "kaiming-normal", lambda_psi0: null, lambda: 5e-4,
      optimizers: ["sgd", "var", "cram"], bn_recal: 500, train_size: 20000 } },
  ];
}

function withPresets(fn) {
  const before = FIELDS.map((f) => f.def);
  try {
    const list = fakePresets();
    adoptPresets(list);
    fn(list);
  } finally {
    FIELDS.forEach((f, i) => (f.def = before[i]));
    PRESETS.splice(0, PRESETS.length);
  }
}

test("presets: the first is the page's default (bare URL); each one's URL reproduces its config exactly", () => {
  withPresets((list) => {
    const bare = fromQuery("");
    assert.deepEqual(bare.messages, []);
    assert.equal(bare.state.ui.preset, "mlp");
    assert.deepEqual(configOf(bare.state), list[0].config);
    assert.equal(toQuery(bare.state), "");
    for (const p of list) {
      const { state, messages } = presetState(p.id);
      // Only the MNIST file set may change, and says so.
      assert.deepEqual(messages.filter((m) => !/switched to the full MNIST files/.test(m)), [], p.id);
      assert.deepEqual(configOf(state), p.config, p.id);
      const q = toQuery(state);
      assert.equal(q, p.id === "mlp" ? "" : `preset=${p.id}`, p.id);
      const back = fromQuery(q);
      assert.deepEqual(back.messages, messages, p.id);
      assert.deepEqual(configOf(back.state), p.config, p.id);
      assert.deepEqual(back.state, state, p.id);
    }
    // The MNIST files follow the preset's sizes (20 000 training images need the full set).
    assert.equal(presetState("kaiming").state.ui.mnist_files, "full");
  });
});

test("presets: other keys apply on top of ?preset=; changes are written against the preset; unknown ids are refused", () => {
  withPresets(() => {
    const a = fromQuery("preset=lenet5&e=1&lp=off&x=cpu");
    assert.deepEqual(a.messages, []);
    assert.equal(a.state.ui.preset, "lenet5");
    assert.equal(a.state.config.model, "lenet5");
    assert.equal(a.state.config.seeds, 4);
    assert.equal(a.state.config.epochs, 1);
    assert.equal(a.state.config.lambda_psi0, null);
    assert.equal(toQuery(a.state), "preset=lenet5&lp=off&e=1&x=cpu");
    assert.deepEqual(fromQuery(toQuery(a.state)).state, a.state);
    // Back to a preset's own value: the key leaves the URL.
    setField(a.state, "epochs", 3);
    assert.equal(toQuery(a.state), "preset=lenet5&lp=off&x=cpu");
    const b = fromQuery("preset=nope&e=1");
    assert.match(b.messages.join(), /Unknown preset “nope” ignored\./);
    assert.equal(b.state.ui.preset, "mlp");
    assert.equal(b.state.config.epochs, 1);
    // A preset key with a value from the first preset's config is still written (it differs from lenet5's).
    const c = fromQuery("preset=cifar-cnn&ds=mnist");
    assert.equal(c.state.config.dataset, "mnist");
    assert.equal(toQuery(c.state), "preset=cifar-cnn&ds=mnist");
  });
});

test("results: paired statistics input, rows and cells; λ and λψ₀; one part keeps the engine's statistics", () => {
  const r = checkResult(fixture());
  assert.equal(hasStats(r), false); // an older file
  const input = statsInput(r);
  assert.deepEqual(input.config, { optimizers: ["sgd", "var"], sparsities: [0.5, 0.9, 0.99] });
  assert.equal(input.runs.length, 4);
  const run = input.runs[0];
  for (const k of ["dense_loss", "prunable_weights", "total_params", "psi", "timing", "weights", "curves", "layers"]) assert.ok(k in run, k);
  assert.deepEqual(run.curves.test_acc, []); // no nulls where the engine wants numbers
  assert.equal(run.diverged, null);
  assert.deepEqual(run.sweep[1], { sparsity: 0.9, actual_sparsity: 0.9, accuracy: r.runs[0].sweep[1].accuracy, accuracy_bn_recal: null });
  const paired = [
    { optimizer: "var", baseline: "sgd", sparsity: null, metric: "accuracy", n: 8, mean: -0.002, std: 0.004, t: -1.4, wins: 2, losses: 6, significant: false },
    { optimizer: "var", baseline: "sgd", sparsity: 0.98, metric: "accuracy", n: 8, mean: 0.034, std: 0.033, t: 2.96, wins: 7, losses: 1, significant: true },
    { optimizer: "var", baseline: "sgd", sparsity: 0.98, metric: "accuracy_bn_recal", n: 1, mean: 0.01, std: 0, t: null, wins: 1, losses: 0, significant: false },
  ];
  const rows = pairedRows(paired);
  assert.deepEqual(rows.map((x) => [x.optimizer, x.baseline, x.metric]), [["var", "sgd", "accuracy"], ["var", "sgd", "accuracy_bn_recal"]]);
  assert.equal(rows[0].dense, paired[0]);
  assert.equal(rows[0].at.get(Math.fround(0.98)), paired[1]);
  // The engine's f32 sparsity, however it was written, finds the same entry.
  assert.equal(pairedRows([{ ...paired[1], sparsity: 0.9800000190734863 }])[0].at.get(Math.fround(0.98)).n, 8);
  assert.equal(formatPaired(paired[1]), "+3.4 ± 3.3 · t = +3.0 · 7/8");
  assert.equal(formatPaired(paired[0]), "−0.2 ± 0.4 · t = −1.4 · 2/8");
  assert.equal(formatPaired(paired[2]), "+1.0 · 1/1");
  assert.equal(formatPaired({ ...paired[1], mean: 0.0004, t: 0.01 }), "0.0 ± 3.3 · t = 0.0 · 7/8");
  assert.equal(formatPaired(null), "—");
  const withLp = { config: { lambda: 7.04e-5 }, runs: [{ optimizer: "sgd", lambda_psi0: 0 }, { optimizer: "var", lambda_psi0: 1.4 },
    { optimizer: "var", lambda_psi0: 1.4001 }] };
  assert.equal(lambdaSummary(withLp), "λ = 7.0e-5 (λψ₀ = 1.40)");
  withLp.runs.push({ optimizer: "cram+var", lambda_psi0: 1.52 });
  assert.equal(lambdaSummary(withLp), "λ = 7.0e-5 (λψ₀ = 1.40–1.52)");
  assert.equal(lambdaSummary(r), "λ = 5.0e-5"); // an older file: no λψ₀ per run
  assert.equal(lambdaSummary({ config: {}, runs: [{ optimizer: "sgd" }] }), null);
  const one = mergeParts(r.config, [{ environment: { executor: "cpu" }, runs: r.runs, paired, verdicts: ["V."] }]);
  assert.equal(one.paired, paired);
  assert.deepEqual(one.verdicts, ["V."]);
  const two = mergeParts(r.config, [{ runs: r.runs.slice(0, 2), paired, verdicts: [] }, { runs: r.runs.slice(2), paired, verdicts: [] }]);
  assert.equal(hasStats(two), false); // several parts: the page asks the engine again
});

test("runs at once (wk): a page-only setting, automatic (null, “auto”) by default, kept out of the engine's config", () => {
  const s = defaults();
  assert.equal(s.ui.workers, null);
  assert.equal("workers" in configOf(s), false);
  const a = fromQuery("wk=2");
  assert.deepEqual(a.messages, []);
  assert.equal(a.state.ui.workers, 2);
  assert.equal(toQuery(a.state), "wk=2");
  assert.deepEqual(fromQuery(toQuery(a.state)).state, a.state);
  for (const q of ["wk=auto", "wk=", "workers=AUTO"]) {
    const b = fromQuery(q);
    assert.deepEqual(b.messages, [], q);
    assert.equal(b.state.ui.workers, null, q);
    assert.equal(toQuery(b.state), "", q);
  }
  const c = fromQuery("wk=0&x=cpu");
  assert.equal(c.state.ui.workers, 1);
  assert.match(c.messages.join("\n"), /workers 0 is below the minimum 1; using 1\./);
  assert.match(setField(defaults(), "workers", "many"), /not a number \(leave it blank, or “auto”, for automatic\); kept auto\./);
});

test("URL: a repeated key says which value is used; λ given while λψ₀ is on says it is unused; result= and rerun= round-trip", () => {
  withPresets(() => {
    const a = fromQuery("preset=lenet5&preset=cifar-cnn");
    assert.equal(a.state.ui.preset, "lenet5");
    assert.match(a.messages.join("\n"), /preset=lenet5 and preset=cifar-cnn both given; using the first, preset=lenet5\./);
  });
  const b = fromQuery("e=2&epochs=3&e=4");
  assert.equal(b.state.config.epochs, 2);
  assert.match(b.messages.join("\n"), /e=2 and e=4 and epochs=3 both given; using the first, e=2\./);
  const c = fromQuery("l=0.5&lp=2");
  assert.equal(c.state.config.lambda_psi0, 2);
  assert.match(c.messages.join("\n"), /l=0\.5 is unused: while λψ₀ is on \(lp=2\), VAR's λ is derived from it \(the CLI refuses the pair\)/);
  assert.deepEqual(fromQuery("l=0.5&lp=off").messages, []);
  const d = fromQuery("result=a.json,b.json&result=https://example.org/c.json&rerun=mlp");
  assert.deepEqual(d.messages, []);
  assert.deepEqual(d.state.ui.results, ["a.json", "b.json", "https://example.org/c.json"]);
  assert.equal(d.state.ui.rerun, "mlp");
  assert.deepEqual(fromQuery(toQuery(d.state)).state.ui, d.state.ui);
  const e = fromQuery(`result=${Array.from({ length: 10 }, (_, i) => `r${i}.json`).join(",")}`);
  assert.equal(e.state.ui.results.length, 8);
  assert.match(e.messages.join("\n"), /result: at most 8 files; kept the first 8\./);
});

test("results: the caps on runs, points, sparsities and optimizers are sentences; summarising 10⁵ points is linear", () => {
  const run = (i, sweep) => ({ optimizer: i % 2 ? "var" : "sgd", seed: i >> 1, dense_accuracy: 0.9, sweep });
  const pts = (n, at = (j) => j / n) => Array.from({ length: n }, (_, j) => ({ sparsity: at(j), accuracy: 0.5 }));
  const many = { version: 1, config: {}, runs: Array.from({ length: 10_000 }, (_, i) => run(i, pts(10, (j) => j / 10))) };
  const t0 = performance.now();
  checkResult(many);
  const sum = summarise(many);
  const ms = performance.now() - t0;
  assert.equal(sum.sparsities.length, 10);
  assert.equal(sum.rows.length, 2);
  assert.equal(sum.rows[0].at[3].n, 5000);
  assert.ok(ms < 2000, `checking and summarising 10⁵ points took ${ms.toFixed(0)} ms`);
  assert.throws(() => checkResult({ version: 1, runs: Array.from({ length: 10_001 }, (_, i) => run(i, [])) }),
    /The file has 10,001 runs; this page draws at most 10,000\./);
  assert.throws(() => checkResult({ version: 1, runs: [run(0, pts(101))] }),
    /The file sweeps 101 different sparsities; this page draws at most 100\./);
  assert.throws(() => checkResult({ version: 1, runs: [run(0, pts(200_001, () => 0.5))] }),
    /more than 200,000 sweep points/);
  assert.throws(() => checkResult({ version: 1, runs: Array.from({ length: 33 }, (_, i) => ({ ...run(i, []), optimizer: `o${i}` })) }),
    /The file names 33 optimizers; this page draws at most 32\./);
});
