// Embed mode (`embed=1`, for an <iframe> in a blog post): the layout, the sections `hide=`
// names, autoplay, and pausing while the figure is scrolled off-screen.
//
// The layout puts the figure first: the hero chart and its verdict, then the run buttons,
// progress in one line (progress.js), the status in one line with a toggle for the notes
// (notices and messages), the settings folded, and below them the paired differences and
// the table. The sections are moved into that order (so that the keyboard follows what is
// seen); style.css does the rest.

import { $, page, state, session, autoPaused, setAutoPaused } from "./ctx.js";

/** The sections of an embedded figure, top to bottom; the others follow, most hidden. */
const EMBED_ORDER = ["hero", "run", "progress", "notices", "controls", "diff", "table"];

export function applyEmbed() {
  document.body.classList.toggle("embed", state.ui.embed);
  if (state.ui.embed) {
    $("controls").open = false;
    const main = document.querySelector("main");
    const rest = [...main.children].filter((n) => !EMBED_ORDER.includes(n.id));
    main.replaceChildren(...EMBED_ORDER.map($), ...rest);
    watchNotes();
  }
  for (const name of state.ui.hide) {
    for (const node of document.querySelectorAll(`[data-section="${name}"], #form [data-key="${name}"]`)) {
      node.classList.add("hidden-by-embed");
    }
  }
}

/** Autoplay starts once, when the page is ready (and, embedded, when the figure is visible). */
export function maybeAutoplay(run) {
  if (!state.ui.autoplay || page.autoplayed || !page.ready || (state.ui.embed && !page.visible)) return;
  page.autoplayed = true;
  run();
}

export function watchVisibility(run) {
  const io = new IntersectionObserver((entries) => {
    const visible = entries.some((e) => e.isIntersecting);
    page.visible = visible;
    maybeAutoplay(run);
    if (!session) return;
    if (!visible && session.status === "running") {
      setAutoPaused(true);
      session.pause();
    } else if (visible && autoPaused) {
      setAutoPaused(false);
      session.resume();
    }
  });
  io.observe($("hero"));
}

/** Embedded, the notes (notice and messages) fold behind one button that counts them. */
function watchNotes() {
  const button = $("notes-toggle");
  const count = () => {
    const n = ($("notice").hidden ? 0 : 1) + $("messages").children.length;
    button.hidden = n === 0;
    button.textContent = `${n} note${n === 1 ? "" : "s"}`;
  };
  button.addEventListener("click", () => {
    const open = document.body.classList.toggle("notes-open");
    button.setAttribute("aria-expanded", String(open));
  });
  const watch = new MutationObserver(count);
  watch.observe($("notice"), { attributes: true, attributeFilter: ["hidden"] });
  watch.observe($("messages"), { childList: true });
  count();
}
