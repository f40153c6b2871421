// The settings form, generated from the field table in state.js: every control has a
// <label>, native inputs keep keyboard use for free, and each control's wrapper carries
// data-key so that embed mode can hide it (`?hide=lambda,rho`). Values go in and out through
// state.js only; nothing here parses or validates.

import { FIELDS, UI_FIELDS, OPTIMIZER_NAMES, MNIST_SETS } from "./state.js";

const GROUPS = [
  ["data", "Data"],
  ["model", "Model and optimizers"],
  ["hyper", "Hyper-parameters"],
  ["train", "Training"],
  ["prune", "Pruning"],
  ["engine", "Engine"],
];

/** Friendlier words for some of the engine's options (any other shows as the engine names it). */
export const WORDS = {
  mnist: "MNIST (built in)", cifar10: "CIFAR-10 (drop the files)", cifar100: "CIFAR-100 (drop the files)",
  mlp: "MLP", lenet5: "LeNet-5", cnn: "CNN (plain, VGG-like)", "cnn-w8": "CNN, width 8", resnet8: "ResNet-8", resnet20: "ResNet-20", resnet18: "ResNet-18",
  "vit-tiny": "ViT-tiny",
  layer: "per layer", pytorch: "PyTorch default", "kaiming-normal": "Kaiming normal",
  auto: "auto (GPU when WebGPU works)", gpu: "GPU (WebGPU)", cpu: "CPU (WebAssembly)",
};
const MB = { subset: "≈ 1.9 MB", full: "≈ 11 MB" }; // the built-in MNIST files' download
const n = (x) => x.toLocaleString("en").replaceAll(",", " ");

/** The words an option of field `f` shows. */
function optionName(f, o) {
  if (f.key === "optimizers") return OPTIMIZER_NAMES[o] ?? o;
  const set = f.key === "mnist_files" && MNIST_SETS[o];
  if (set) return `${o}: ${n(set.train)} / ${n(set.test)} images (${MB[o]})`;
  return WORDS[o] ?? o;
}

/** The sentence under a control: the engine's help for its fields; the page's for its own. */
const HINTS = {
  get workers() {
    const cores = (typeof navigator !== "undefined" && navigator.hardwareConcurrency) || 2;
    return `each in its own worker; blank = automatic (one fewer than the ${cores} cores here). The GPU trains one at a time.`;
  },
};
const hintOf = (f) => f.help || HINTS[f.key];

const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v;
    else if (k in e && k !== "list") e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...kids);
  return e;
};

function control(f) {
  const id = `f-${f.key}`;
  const wrap = el("div", { className: `field field-${f.type}` });
  wrap.dataset.key = f.key;
  if (f.type === "set") {
    const fs = el("fieldset", { className: "checks" }, el("legend", { text: f.label }));
    for (const o of f.options) {
      const box = el("input", { type: "checkbox", id: `${id}-${o.replace("+", "-")}`, name: f.key, value: o });
      fs.append(el("label", {}, box, ` ${optionName(f, o)}`));
    }
    wrap.append(fs);
    return hinted(wrap, fs, f);
  }
  let input;
  if (f.type === "bool") {
    input = el("input", { type: "checkbox", id, name: f.key });
    wrap.append(el("label", { htmlFor: id }, input, ` ${f.label}`));
    return hinted(wrap, input, f);
  }
  if (f.type === "enum") {
    input = el("select", { id, name: f.key });
    for (const o of f.options) input.append(el("option", { value: o, text: optionName(f, o) }));
  } else if (f.type === "list") {
    input = el("input", { type: "text", id, name: f.key, inputMode: "decimal", spellcheck: false, autocomplete: "off" });
  } else {
    input = el("input", { type: "number", id, name: f.key, step: f.type === "int" ? "1" : "any" });
    if (typeof f.min === "number") input.min = String(f.min);
    if (typeof f.max === "number") input.max = String(f.max);
  }
  wrap.append(el("label", { htmlFor: id, text: f.label }), input);
  return hinted(wrap, input, f);
}

/** Adds field `f`'s hint under its control, described by it for assistive technology. */
function hinted(wrap, described, f) {
  const text = hintOf(f);
  if (text) {
    const hint = el("small", { id: `f-${f.key}-hint`, text });
    described.setAttribute("aria-describedby", hint.id);
    wrap.append(hint);
  }
  return wrap;
}

/**
 * Fills `form` with one fieldset per group; `extra[group]` nodes are appended to a group
 * (e.g. the CIFAR-10 drop zone). `onChange(key, raw)` receives every edit.
 */
export function buildControls(form, onChange, extra = {}) {
  const all = [...FIELDS, ...UI_FIELDS];
  const outer = el("fieldset", { className: "all-fields" });
  outer.append(el("legend", { className: "visually-hidden", text: "Experiment settings" }));
  for (const [group, title] of GROUPS) {
    const fs = el("fieldset", { className: `group group-${group}` }, el("legend", { text: title }));
    for (const f of all.filter((x) => x.group === group)) fs.append(control(f));
    if (extra[group]) fs.append(...extra[group]);
    outer.append(fs);
  }
  form.replaceChildren(outer);
  form.addEventListener("change", (e) => {
    const t = e.target;
    const f = all.find((x) => x.key === t.name);
    if (!f) return;
    if (f.type === "set") {
      onChange(f.key, [...form.querySelectorAll(`input[name="${f.key}"]:checked`)].map((b) => b.value));
    } else if (f.type === "bool") {
      onChange(f.key, t.checked);
    } else {
      onChange(f.key, t.value);
    }
  });
  form.addEventListener("submit", (e) => e.preventDefault());
}

/** Shows the state's values in the form. */
export function syncControls(form, state) {
  for (const f of [...FIELDS, ...UI_FIELDS]) {
    const v = (UI_FIELDS.includes(f) ? state.ui : state.config)[f.key];
    if (f.type === "set") {
      for (const b of form.querySelectorAll(`input[name="${f.key}"]`)) b.checked = v.includes(b.value);
      continue;
    }
    const input = form.querySelector(`[name="${f.key}"]`);
    if (!input) continue;
    if (f.type === "bool") input.checked = v;
    else if (f.type === "list") input.value = v.join(", ");
    else input.value = v === null ? "" : String(v);
  }
  const mnist = state.config.dataset === "mnist";
  form.querySelector('[data-key="mnist_files"]').hidden = !mnist;
  const cifar = form.querySelector("#cifar-zone");
  if (cifar) cifar.hidden = mnist;
}
