// reverie dashboard: live updates. The server sends a `change` event when the cluster changes;
// the page then fetches itself and swaps the regions marked data-live, so an approval made
// elsewhere shows without a reload. Each page carries the count of changes it was rendered at
// (body data-seen); the stream's first event is the count now, so a change that happened
// between rendering and connecting is caught too. A region holding what the reviewer is typing is kept
// unless the fresh page no longer offers that form (the proposal was decided meanwhile).
"use strict";

(function () {
  const status = document.getElementById("live-status");
  const say = (text, state) => {
    if (!status) return;
    status.textContent = text;
    status.dataset.state = state;
  };

  let timer = null;
  let refreshes = 0;
  let seen = Number(document.body.dataset.seen || 0);

  async function refresh() {
    let response;
    try {
      response = await fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    } catch (_) {
      say("offline: reload to see changes", "offline");
      return;
    }
    if (!response.ok && response.status !== 404) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live]")) {
      const replacement = fresh.getElementById(region.id);
      if (!replacement) continue;
      const typing = region.contains(document.activeElement) || Array.from(region.querySelectorAll("textarea")).some((t) => t.value !== "");
      if (typing && replacement.querySelector("form")) continue;
      region.replaceWith(document.adoptNode(replacement));
    }
    seen = Math.max(seen, Number(fresh.body.dataset.seen || 0));
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
  }

  if (!window.EventSource) return;
  const source = new EventSource("/events");
  source.addEventListener("error", () => say("reconnecting…", "offline"));
  source.addEventListener("problem", (event) => say("not live: " + event.data, "offline"));
  source.addEventListener("healthy", () => say("live", "live"));
  source.addEventListener("change", (event) => {
    if (Number(event.data) <= seen) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
})();
