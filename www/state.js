// All of the page's state in one serialisable object (in the spirit of TensorFlow
// Playground's state.ts): `config` is exactly the experiment config JSON the engine and the
// CLI accept (version 1); `ui` holds what only the page needs. The state is mirrored in the
// URL with short keys, only the values that differ from the defaults — or, after
// `preset=ID`, from that preset's config. The page's defaults are the engine's first preset.
// λψ₀ may be null ("use λ as given"): blank in the form, `lp=off` in the URL.
//
// Every value from the URL, a form control or a file passes through `setField`: numbers out
// of range are clamped, unknown words refused (the old value kept), and each correction comes
// back as one sentence for the page to show. Nothing here touches the DOM.

/** The built-in MNIST file sets (see scripts/mnist-asset.mjs): the subset's sizes; the full
 * set is the data set, its sizes from the engine's schema. */
export const MNIST_SETS = { subset: { train: 10000, test: 2000 } };

/**
 * The config fields, from the engine's schema (`config_schema()`, as `varlab config --schema`
 * prints it) by `adoptSchema`, in its order, which is the order of validation: {key, short,
 * type: int | float | bool | enum | set (subset of options) | list (numbers in [min, max]),
 * min, max, max_items, nullable, options, default, group, label, help}. The page adds `def`
 * (its default: the engine's, then its first preset's) and `cap` (page-only: a limit that
 * depends on other fields). Every limit, option, key and sentence here is the engine's.
 */
export const FIELDS = [];
/** The engine's optimizers in its order: [{name, display, params: [field keys]}]. */
export const OPTIMIZERS = [];
/** Display names of the optimizers by name (cram+var → CrAM+VAR). */
export const OPTIMIZER_NAMES = {};
/** The built-in data sets' sizes: {mnist: {train, test}, cifar10: {train, test}}. */
export const DATASETS = {};
let version = null; // the config version the engine reads

/** Page-only limits the schema cannot express: the images the chosen data set holds. */
const CAPS = {
  train_size: (c) => DATASETS[c.dataset]?.train,
  test_size: (c) => DATASETS[c.dataset]?.test,
};

/** Takes the engine's config schema; call it before anything reads FIELDS. */
export function adoptSchema(schema) {
  if (!Array.isArray(schema?.fields)) throw new Error("The engine's config schema lists no fields; rebuild the page.");
  FIELDS.splice(0, FIELDS.length, ...schema.fields.map((f) => ({ ...f, def: clone(f.default), cap: CAPS[f.key] })));
  OPTIMIZERS.splice(0, OPTIMIZERS.length, ...(schema.optimizers ?? []));
  for (const k of Object.keys(OPTIMIZER_NAMES)) delete OPTIMIZER_NAMES[k];
  for (const o of OPTIMIZERS) OPTIMIZER_NAMES[o.name] = o.display;
  Object.assign(DATASETS, schema.datasets);
  if (DATASETS.mnist) MNIST_SETS.full = { ...DATASETS.mnist };
  version = schema.version;
  index();
}

/** Page-only fields, mirrored in the URL like the config. */
export const UI_FIELDS = [
  { key: "mnist_files", short: "mf", type: "enum", options: ["subset", "full"], def: "subset", group: "data", label: "Built-in MNIST files" },
  // Runs trained at once, each in its own worker, on the CPU executor (the GPU's trains one
  // at a time). null (blank in the form, "auto" in the URL): one fewer than the CPU's cores.
  { key: "workers", short: "wk", type: "int", nullable: true, blank: "auto", min: 1, max: 64, def: null, group: "engine",
    label: "Runs at once (CPU executor)" },
];

/** Parts of the page that `?hide=` may name, besides any field key or short key. */
export const SECTIONS = ["header", "presets", "controls", "run", "progress", "live", "hero", "diff", "table", "layers", "saved", "export", "notices", "footer"];

let ALL = [...UI_FIELDS];
let byKey = new Map();
function index() {
  ALL = [...FIELDS, ...UI_FIELDS];
  byKey = new Map(ALL.flatMap((f) => [[f.key, f], [f.short, f]]));
}
index();
export const field = (key) => byKey.get(key);

const clone = (v) => (Array.isArray(v) ? [...v] : v);
/** A field's upper limit for config `c`: the engine's, or less where a page cap says so. */
const maxOf = (f, c) => Math.min(f.max, f.cap?.(c) ?? Infinity);
/** A value as the URL writes it; null (a nullable number left blank) is "off", or the
 * field's own word for it (`blank`). */
const show = (v, f) => (v === null ? f?.blank ?? "off" : Array.isArray(v) ? v.join(",") : String(v));
/** Words that leave a nullable number blank (from the URL, a form or a file). */
const isBlank = (raw, f) => raw === null || ["", "off", "null", "none", f?.blank].includes(String(raw).trim().toLowerCase());

/**
 * Makes the engine's default config (`default_config()`) the page's defaults, field by field
 * where the page accepts the value, so that the page and the engine never drift apart.
 */
export function adoptDefaults(config) {
  for (const f of FIELDS) {
    if (!config || !(f.key in config)) continue;
    const scratch = defaults();
    if (setField(scratch, f.key, config[f.key]) === null) f.def = clone(scratch.config[f.key]);
  }
}

/**
 * The engine's presets (`presets()`: [{id, title, about, config}, …]); the first is the
 * page's default, so a bare URL is that experiment. Filled by `adoptPresets`.
 */
export const PRESETS = [];
export const presetById = (id) => PRESETS.find((p) => p.id === id) ?? null;

/** Takes the engine's presets and makes the first one's config the page's defaults. */
export function adoptPresets(list) {
  const ok = (Array.isArray(list) ? list : []).filter((p) => p && typeof p.id === "string" && p.config && typeof p.config === "object");
  PRESETS.splice(0, PRESETS.length, ...ok);
  if (PRESETS.length) adoptDefaults(PRESETS[0].config);
}

/**
 * The state of preset `id`: its config over the defaults, with its sentences (values the
 * page had to correct). An unknown id gives the defaults and a sentence.
 */
export function presetState(id) {
  const state = defaults();
  const p = presetById(id);
  if (!p) return { state, messages: [`Unknown preset “${String(id).slice(0, 30)}” ignored.`] };
  state.ui.preset = p.id;
  return { state, messages: applyConfig(state, p.config) };
}

/** A fresh state with every default. */
export function defaults() {
  const config = { version };
  for (const f of FIELDS) config[f.key] = clone(f.def);
  const ui = { embed: false, autoplay: false, hide: [], data: [], preset: PRESETS[0]?.id ?? null, results: [], rerun: null };
  for (const f of UI_FIELDS) ui[f.key] = clone(f.def);
  return { config, ui };
}

const holder = (state, f) => (UI_FIELDS.includes(f) ? state.ui : state.config);

/**
 * Sets one field from a raw value (a string from the URL or a form, or a JSON value from a
 * file). Returns null when accepted as given, else the sentence saying what was done.
 */
export function setField(state, key, raw) {
  const f = field(key);
  if (!f) return `Unknown setting “${key}” ignored.`;
  const obj = holder(state, f);
  const c = state.config;
  const name = f.key;
  switch (f.type) {
    case "int":
    case "float": {
      if (f.nullable && isBlank(raw, f)) {
        obj[name] = null;
        return null;
      }
      const x = typeof raw === "number" ? raw : Number(String(raw).trim());
      if (String(raw).trim() === "" || !Number.isFinite(x)) {
        const or = f.nullable ? ` (leave it blank, or “${f.blank ?? "off"}”, ${f.blank ? "for automatic" : "to do without"})` : "";
        return `${name}: “${String(raw).slice(0, 40)}” is not a number${or}; kept ${show(obj[name], f)}.`;
      }
      const lo = f.min;
      const hi = maxOf(f, c);
      let v = f.type === "int" ? Math.round(x) : x;
      let msg = f.type === "int" && v !== x ? `${name} must be a whole number; using ${v}.` : null;
      if (v < lo) [v, msg] = [lo, `${name} ${x} is below the minimum ${lo}; using ${lo}.`];
      if (v > hi) [v, msg] = [hi, `${name} ${x} is above the maximum ${hi}; using ${hi}.`];
      obj[name] = v;
      return msg;
    }
    case "bool": {
      const s = String(raw).trim().toLowerCase();
      if (raw === true || ["1", "true", "yes", "on"].includes(s)) obj[name] = true;
      else if (raw === false || ["0", "false", "no", "off"].includes(s)) obj[name] = false;
      else return `${name}: “${String(raw).slice(0, 40)}” is not yes or no; kept ${obj[name]}.`;
      return null;
    }
    case "enum": {
      const s = String(raw).trim().toLowerCase();
      if (!f.options.includes(s)) {
        return `${name}: “${String(raw).slice(0, 40)}” is not one of ${f.options.join(", ")}; kept ${obj[name]}.`;
      }
      obj[name] = s;
      return null;
    }
    case "set": {
      // A "+" typed into a URL arrives as a space ("a b"): read it back as "a+b".
      const items = (Array.isArray(raw) ? raw : String(raw).split(","))
        .map((s) => String(s).trim().toLowerCase().replace(/\s+/g, "+")).filter(Boolean);
      const bad = items.filter((s) => !f.options.includes(s));
      const good = f.options.filter((o) => items.includes(o));
      if (good.length === 0) return `${name}: choose at least one of ${f.options.join(", ")}; kept ${show(obj[name])}.`;
      obj[name] = good.slice(0, f.max_items);
      if (bad.length) return `${name}: ignored unknown ${bad.map((s) => s.slice(0, 20)).join(", ")}.`;
      return good.length > f.max_items ? `${name}: at most ${f.max_items}; kept the first ${f.max_items}.` : null;
    }
    case "list": {
      const items = (Array.isArray(raw) ? raw : String(raw).split(",")).map((s) => String(s).trim()).filter((s) => s !== "");
      const nums = [];
      const bad = [];
      for (const s of items) {
        const x = Number(s);
        if (Number.isFinite(x) && x >= f.min && x <= f.max) nums.push(x);
        else bad.push(s.slice(0, 20));
      }
      const uniq = [...new Set(nums)].sort((a, b) => a - b);
      if (uniq.length === 0) {
        return `${name}: give numbers between ${f.min} and ${f.max}, separated by commas; kept ${show(obj[name])}.`;
      }
      obj[name] = uniq.slice(0, f.max_items);
      if (bad.length) return `${name}: dropped ${bad.join(", ")} (each must be between ${f.min} and ${f.max}).`;
      if (uniq.length > f.max_items) return `${name}: at most ${f.max_items} values; kept the first ${f.max_items}.`;
      return uniq.length !== items.length ? `${name}: sorted, duplicates removed.` : null;
    }
    default:
      return null;
  }
}

/**
 * Rules between fields, applied after every change: limits that depend on other fields are
 * re-checked and the MNIST file set follows the subset sizes. Returns sentences.
 */
export function normalise(state) {
  const msgs = [];
  const c = state.config;
  for (const f of FIELDS.filter((x) => x.cap)) {
    const hi = maxOf(f, c);
    if (c[f.key] > hi) {
      msgs.push(`${f.key} ${c[f.key]} is above the maximum ${hi}; using ${hi}.`);
      c[f.key] = hi;
    }
  }
  const sub = MNIST_SETS.subset;
  if (c.dataset === "mnist" && state.ui.mnist_files === "subset" && (c.train_size > sub.train || c.test_size > sub.test)) {
    state.ui.mnist_files = "full";
    msgs.push(`The built-in subset holds ${sub.train} training and ${sub.test} test images; switched to the full MNIST files.`);
  }
  return msgs;
}

/**
 * Reads a state from a URL query string; returns { state, messages }. `preset=ID` starts
 * from that preset's config; the other keys are applied on top of it.
 */
export function fromQuery(search) {
  const params = new URLSearchParams(search);
  const id = params.get("preset");
  const { state, messages } = id === null ? { state: defaults(), messages: [] } : presetState(id.trim());
  const seen = new Set(["preset"]);
  for (const [k, v] of params) {
    if (seen.has(k)) continue;
    seen.add(k);
    if (k === "embed" || k === "autoplay") {
      state.ui[k] = ["1", "true", "yes", ""].includes(v.trim().toLowerCase());
    } else if (k === "hide") {
      const names = v.split(",").map((s) => s.trim()).filter(Boolean);
      const bad = names.filter((s) => !SECTIONS.includes(s) && !field(s));
      state.ui.hide = names.filter((s) => !bad.includes(s)).map((s) => (field(s) ? field(s).key : s));
      if (bad.length) messages.push(`hide: ignored unknown ${bad.map((s) => s.slice(0, 20)).join(", ")}.`);
    } else if (k === "result") {
      const urls = params.getAll("result").flatMap((x) => x.split(",")).map((x) => x.trim()).filter(Boolean);
      state.ui.results = urls.slice(0, MAX_RESULT_URLS);
      if (urls.length > MAX_RESULT_URLS) messages.push(`result: at most ${MAX_RESULT_URLS} files; kept the first ${MAX_RESULT_URLS}.`);
    } else if (k === "rerun") {
      state.ui.rerun = v.trim().slice(0, 40) || null;
    } else if (k === "data") { // CIFAR-10 from URLs (cifar.js): a comma list or repeated keys
      state.ui.data = params.getAll(k).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);
    } else if (field(k)) {
      // Fields are applied in FIELDS order below, so that dependent limits see their inputs.
    } else if (FIELDS.length) { // without the engine's schema every key is unknown: say nothing
      messages.push(`Unknown URL parameter “${k.slice(0, 30)}” ignored.`);
    }
  }
  messages.push(...repeatedKeys(params));
  for (const f of ALL) {
    const raw = params.get(f.short) ?? params.get(f.key);
    if (raw === null) continue;
    const msg = setField(state, f.key, raw);
    if (msg) messages.push(msg);
  }
  messages.push(...normalise(state), ...unusedLambda(params, state));
  return { state, messages };
}

/** Stored results (`result=`) a URL may name. */
export const MAX_RESULT_URLS = 8;

/** A sentence per key given more than once (or by its short and long name): the first wins. */
function repeatedKeys(params) {
  const msgs = [];
  const keys = ["preset", "embed", "autoplay", "hide", "rerun"].map((k) => [k]).concat(ALL.map((f) => [...new Set([f.short, f.key])]));
  for (const names of keys) {
    const given = names.flatMap((n) => params.getAll(n).map((v) => `${n}=${v.slice(0, 30)}`));
    if (given.length > 1) msgs.push(`${given.join(" and ")} both given; using the first, ${given[0]}.`);
  }
  return msgs;
}

/** λ given while λψ₀ is on: λ is then derived from λψ₀ and the value given is unused (the
 * CLI refuses the pair). */
function unusedLambda(params, state) {
  const l = field("lambda");
  const lp = field("lambda_psi0");
  if (!l || !lp || state.config.lambda_psi0 === null || state.config.lambda_psi0 === undefined) return [];
  const raw = params.get(l.short) ?? params.get(l.key);
  if (raw === null) return [];
  return [`${l.short}=${raw.slice(0, 20)} is unused: while λψ₀ is on (${lp.short}=${state.config.lambda_psi0}), VAR's λ is derived ` +
    `from it (the CLI refuses the pair); give ${lp.short}=off to use λ as given.`];
}

/**
 * The URL query string for a state: `preset=ID` unless it is the first preset, then short
 * keys for the values that differ from that preset's (or, without one, the defaults').
 */
export function toQuery(state) {
  const params = new URLSearchParams();
  const id = state.ui.preset;
  const base = id && presetById(id) ? presetState(id).state : defaults();
  if (id && presetById(id) && id !== PRESETS[0].id) params.set("preset", id);
  for (const f of ALL) {
    const v = holder(state, f)[f.key];
    if (show(v, f) !== show(holder(base, f)[f.key], f)) params.set(f.short, typeof v === "boolean" ? (v ? "1" : "0") : show(v, f));
  }
  if (state.ui.embed) params.set("embed", "1");
  if (state.ui.hide.length) params.set("hide", state.ui.hide.join(","));
  if (state.ui.autoplay) params.set("autoplay", "1");
  for (const u of state.ui.results ?? []) params.append("result", u);
  if (state.ui.rerun) params.set("rerun", state.ui.rerun);
  if (state.ui.data.length) params.set("data", state.ui.data.join(","));
  return params.toString().replaceAll("%2C", ",");
}

/** Applies a config object (e.g. from an imported results file); returns sentences. */
export function applyConfig(state, config) {
  const messages = [];
  if (!config || typeof config !== "object") return ["The file holds no config object."];
  // As the engine reads it: a config that gives λ but not λψ₀ (every file written before
  // λψ₀ existed) means that λ; without `init` too, it was trained from Kaiming-normal.
  const old = "lambda" in config && !("lambda_psi0" in config);
  const given = old ? { ...config, lambda_psi0: null } : config;
  if (old && !("init" in config)) given.init = "kaiming-normal";
  for (const f of FIELDS) {
    if (!(f.key in given)) continue;
    const msg = setField(state, f.key, given[f.key]);
    if (msg) messages.push(msg);
  }
  messages.push(...normalise(state));
  return messages;
}

/** The config JSON object the engine receives (a copy). */
export function configOf(state) {
  return JSON.parse(JSON.stringify(state.config));
}
