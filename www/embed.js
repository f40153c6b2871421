// Embed mode (`embed=1`, for an <iframe> in a blog post): the compact layout, the sections
// `hide=` names, autoplay, and pausing while the figure is scrolled off-screen.

import { $, page, state, session, autoPaused, setAutoPaused } from "./ctx.js";

export function applyEmbed() {
  document.body.classList.toggle("embed", state.ui.embed);
  if (state.ui.embed) $("controls").open = false;
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
