// The settings: state ⇄ form ⇄ URL, and the presets list. Every change goes through
// state.js (setField, normalise), then the form and the URL follow.

import { toQuery, setField, normalise, configOf, PRESETS, presetById, presetState } from "./state.js";
import { syncControls } from "./controls.js";
import { $, el, state, setState, view, overlays, showMessages } from "./ctx.js";
import { redrawSoon } from "./draw.js";

/** With nothing drawn yet, the hero chart's empty axes follow the settings. */
const replan = () => !view.result && overlays.length === 0 && redrawSoon();

/** Writes the state into the URL (and the embed's "Open the full page" link). */
export function updateURL() {
  const q = toQuery(state);
  history.replaceState(null, "", q ? `?${q}` : location.pathname);
  // Embedded, a link opens the full page with the same settings.
  const full = toQuery({ ...state, ui: { ...state.ui, embed: false, hide: [], autoplay: false } });
  $("open-full").href = `${location.pathname}${full ? `?${full}` : ""}`;
  $("open-full").hidden = !state.ui.embed;
  showPreset();
}

/** Fills the preset list from the engine's presets (hidden when there are none). */
export function buildPresets() {
  const select = $("preset");
  select.replaceChildren(...PRESETS.map((p) => {
    const o = el("option", p.title);
    o.value = p.id;
    return o;
  }));
  $("presets").hidden = PRESETS.length === 0;
  select.addEventListener("change", () => choosePreset(select.value));
}

/** The chosen preset and its sentence; says so when the settings no longer match it. */
function showPreset() {
  const p = presetById(state.ui.preset);
  if (p) $("preset").value = p.id;
  const changed = p && JSON.stringify(configOf(state)) !== JSON.stringify(presetState(p.id).state.config);
  $("preset-about").textContent = p ? `${p.about}${changed ? " (The settings below differ from this preset.)" : ""}` : "";
}

/** Replaces the settings with preset `id`'s; embed, hide, autoplay and the stored results stay. */
export function choosePreset(id) {
  const { state: next, messages } = presetState(id);
  const { embed, hide, autoplay, workers, results, rerun, data } = state.ui;
  Object.assign(next.ui, { embed, hide, autoplay, workers, results, rerun, data });
  setState(next);
  syncControls($("form"), state);
  updateURL();
  showMessages(messages);
  replan();
}

export function onFieldChange(key, raw) {
  const msgs = [setField(state, key, raw), ...normalise(state)].filter(Boolean);
  syncControls($("form"), state);
  updateURL();
  showMessages(msgs);
  replan();
}
