// Unit tests of the page's DOM-free modules (www/state.js, www/results.js) under node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defaults, fromQuery, toQuery, setField, applyConfig, configOf, adoptDefaults, adoptPresets, presetState, PRESETS, FIELDS }
  from "../../www/state.js";
import { checkResult, summarise, formatCell, toCSV, mergeParts, meanStd, statsInput, pairedRows, formatPaired, lambdaSummary, hasStats }
  from "../../www/results.js";

const fixture = () => JSON.parse(readFileSync(join(import.meta.dirname, "fixtures/results-small.json"), "utf8"));

test("the fallback defaults (before the engine loads) are a version-1 config and make an empty query", () => {
  const s = defaults();
  assert.equal(s.config.version, 1);
  assert.deepEqual(s.config.optimizers, ["sgd", "var"]);
  assert.equal(s.config.lambda, 1e-4);
  assert.equal(s.config.lambda_psi0, 1.4);
  assert.equal(s.config.init, "pytorch");
  assert.equal(s.config.lr, 0.05);
  assert.equal(s.config.warmup_epochs, 0);
  assert.deepEqual(s.config.sparsities, [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]);
  assert.equal(s.ui.preset, null); // no presets before the engine loads
  assert.equal(toQuery(s), "");
  assert.equal(Object.keys(configOf(s)).length, 30);
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
  const { state, messages } = fromQuery("lr=50&b=0&e=2.6&m=<img src=x>&o=nope&sp=0.9,2,abc,0.5,0.9&wu=9&zz=1&hide=bogus,table");
  assert.equal(state.config.lr, 10);
  assert.equal(state.config.batch, 1);
  assert.equal(state.config.epochs, 3);
  assert.equal(state.config.model, "lenet5");
  assert.deepEqual(state.config.optimizers, ["sgd", "var"]);
  assert.deepEqual(state.config.sparsities, [0.5, 0.9]);
  assert.equal(state.config.warmup_epochs, 3); // limited by epochs
  assert.deepEqual(state.ui.hide, ["table"]);
  const text = messages.join("\n");
  for (const want of ["lr 50 is above the maximum 10", "batch 0 is below the minimum 1", "epochs must be a whole number",
    "model: “<img src=x>” is not one of", "optimizers: choose at least one", "sparsities: dropped 2, abc",
    "warmup_epochs 9 is above the maximum 3", "Unknown URL parameter “zz”", "hide: ignored unknown bogus"]) {
    assert.ok(text.includes(want), `missing “${want}” in:\n${text}`);
  }
});

test("large MNIST subsets switch to the full files; CIFAR-10 caps the training set", () => {
  const a = fromQuery("tr=20000");
  assert.equal(a.state.ui.mnist_files, "full");
  assert.match(a.messages.join(), /switched to the full MNIST files/);
  const b = fromQuery("ds=cifar10&tr=60000");
  assert.equal(b.state.config.train_size, 50000);
  const s = defaults();
  assert.equal(setField(s, "seeds", "3"), null);
  assert.match(setField(s, "seeds", "x"), /not a number; kept 3/);
  assert.deepEqual(applyConfig(s, { model: "resnet8", lr: -1 }), ["lr -1 is below the minimum 0.000001; using 0.000001."]);
});

test("results: checking, mean ± std over seeds, CSV rows and merged parts", () => {
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
  const csv = toCSV(r).trim().split("\n");
  assert.equal(csv.length, 1 + 4 * 3);
  assert.match(csv[1], /^sgd,0,0.5,0.5,/);
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
    assert.equal(s.config.batch, 64); // out of the page's range: its own default stays
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
  assert.match(toCSV(r).split("\n")[0], /,psi,psi_init,lambda_psi0,model,/);
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
