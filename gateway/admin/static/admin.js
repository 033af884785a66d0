// The dashboard's live part: fetch /admin/live again every few seconds and swap it in.
// The server renders it (escaped); a signed-out session goes back to the login form.
"use strict";

(() => {
  const live = document.getElementById("live");
  if (!live) return;
  const state = document.getElementById("refresh-state");
  const every = Math.max(1, Number(live.dataset.refresh || "5")) * 1000;

  async function refresh() {
    try {
      const response = await fetch("/admin/live", {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (response.status === 401) {
        window.location.assign("/admin/login");
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      live.replaceChildren(...page.body.childNodes);
      live.dataset.state = "ok";
      state.textContent = "";
    } catch (error) {
      live.dataset.state = "stale";
      state.textContent = `Not refreshed (${error.message}); trying again.`;
    }
    window.setTimeout(refresh, every);
  }

  window.setTimeout(refresh, every);
})();
