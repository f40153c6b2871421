// Unit tests of the page's DOM-free modules (www/state.js, www/results.js) under node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defaults, fromQuery, toQuery, setField, applyConfig, configOf, adoptDefaults, FIELDS } from "../../www/state.js";
import { checkResult, summarise, formatCell, toCSV, mergeParts, meanStd } from "../../www/results.js";

const fixture = () => JSON.parse(readFileSync(join(import.meta.dirname, "fixtures/results-small.json"), "utf8"));

test("the fallback defaults (before the engine loads) are a version-1 config and make an empty query", () => {
  const s = defaults();
  assert.equal(s.config.version, 1);
  assert.deepEqual(s.config.optimizers, ["sgd", "var"]);
  assert.equal(s.config.lambda, 5e-5);
  assert.deepEqual(s.config.sparsities, [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]);
  assert.equal(toQuery(s), "");
  assert.equal(Object.keys(configOf(s)).length, 28);
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
