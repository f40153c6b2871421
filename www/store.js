// Finished runs persist in IndexedDB (database "varlab", store "results"): one record per
// experiment, { id, saved, label, result }, rewritten after each finished run.

const DB = "varlab";
const STORE = "results";

let opening = null;

function open() {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`The browser's storage (IndexedDB) could not be opened: ${req.error?.message ?? "unknown error"}.`));
    req.onblocked = () => reject(new Error("The browser's storage (IndexedDB) is blocked by another tab of this page."));
  });
  opening.catch(() => (opening = null));
  return opening;
}

async function tx(mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = work(t.objectStore(STORE));
    t.oncomplete = () => resolve(req?.result);
    t.onerror = () => reject(new Error(`Saving to the browser's storage failed: ${t.error?.message ?? "unknown error"}.`));
    t.onabort = () => reject(new Error(`Saving to the browser's storage was aborted: ${t.error?.message ?? "quota exceeded?"}.`));
  });
}

/** Every saved record, newest first. */
export async function listResults() {
  const all = await tx("readonly", (s) => s.getAll());
  return (all ?? []).sort((a, b) => b.saved - a.saved);
}

/** Saves (or replaces) the record `id`. */
export const saveResult = (id, label, result) => tx("readwrite", (s) => s.put({ id, saved: Date.now(), label, result }));

export const deleteResult = (id) => tx("readwrite", (s) => s.delete(id));

export const clearResults = () => tx("readwrite", (s) => s.clear());
