// Saved experiments: the list of results kept in this browser (store.js, IndexedDB), with
// Show, Use its settings and Delete.

import { applyConfig } from "./state.js";
import { syncControls } from "./controls.js";
import { listResults, deleteResult, clearResults } from "./store.js";
import { $, el, sentence, page, state, session, view, setView, showMessages } from "./ctx.js";
import { redraw } from "./draw.js";
import { updateURL } from "./settings.js";

/** "8 runs", or "3 of 8 runs — cut short (…)" for a saved experiment that stopped before its
 * last run (a reload or a closed tab mid-run) and is not the one running now. */
function runsText(rec) {
  const r = rec.result;
  const planned = (r.config?.optimizers?.length ?? 0) * (r.config?.seeds ?? 0);
  const live = session && session.id === rec.id && ["loading", "running", "paused"].includes(session.status);
  if (live || !(planned > r.runs.length)) return `${r.runs.length} runs`;
  return `${r.runs.length} of ${planned} runs — cut short (“Use its settings” and Run to redo it)`;
}

export async function refreshSaved() {
  let records = [];
  try {
    records = await listResults();
  } catch (e) {
    showMessages([sentence(e)]);
  }
  const ul = $("saved-list");
  ul.replaceChildren(...records.map((rec) => {
    const li = el("li");
    li.dataset.id = rec.id;
    const when = new Date(rec.saved).toLocaleString();
    const show = el("button", "Show");
    show.type = "button";
    show.setAttribute("aria-label", `Show ${rec.label}`);
    show.addEventListener("click", () => {
      setView({ result: rec.result, source: `saved:${rec.id}` });
      redraw();
    });
    const del = el("button", "Delete");
    del.type = "button";
    del.setAttribute("aria-label", `Delete ${rec.label}`);
    del.addEventListener("click", async () => {
      await deleteResult(rec.id);
      if (view.source === `saved:${rec.id}`) {
        setView({ result: null, source: "none" });
        redraw();
      }
      await refreshSaved();
    });
    const load = el("button", "Use its settings");
    load.type = "button";
    load.setAttribute("aria-label", `Use the settings of ${rec.label}`);
    load.addEventListener("click", () => {
      const msgs = applyConfig(state, rec.result.config);
      syncControls($("form"), state);
      updateURL();
      showMessages(msgs.length ? msgs : ["Settings loaded: Run reproduces this experiment on this adapter."], msgs.length ? "warn" : "ok");
    });
    li.append(el("span", `${rec.label} · ${runsText(rec)} · ${when}`, "saved-label"), show, load, del);
    return li;
  }));
  $("delete-all").disabled = records.length === 0;
  page.saved = records.length;
  return records;
}

export function wireSaved() {
  $("delete-all").addEventListener("click", async () => {
    await clearResults();
    if (view.source.startsWith("saved:")) {
      setView({ result: null, source: "none" });
      redraw();
    }
    await refreshSaved();
  });
}
