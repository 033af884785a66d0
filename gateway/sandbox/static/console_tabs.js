/* Messenger gateway — sandbox console: the messenger tabs of the customer pane.
 *
 * What the VK and Viber tabs (console_vk.js, console_viber.js) share: talking to their emulator's
 * control API on the same origin, showing its files, following its event feed, the page config,
 * and the tab bar itself. Loaded after console.js (whose helpers it uses) and before the tabs.
 */
"use strict";

/** Call another emulator's control API (``base`` is where it is mounted, e.g. "/sandbox/vk"):
 *  JSON in and out, or an Error with its error text. The VK and Viber tabs use it. */
async function controlApi(base, path, body) {
  const resp = await fetch(`${base}/_control${path}`, body === undefined ? {}
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const raw = await resp.text();
  let data = raw;
  try { data = raw ? JSON.parse(raw) : null; } catch { /* not JSON */ }
  if (!resp.ok) throw new Error(`${resp.status}: ${(data && data.error) || resp.statusText}`);
  return data;
}

/** An emulator's absolute file URL as a same-origin path under ``base``/files/; null for anything
 *  else (e.g. an avatar on the internet): the page only shows its own origin's files. */
function emulatorFile(base, url) {
  try {
    const u = new URL(url, window.location.href);
    return u.origin === window.location.origin && u.pathname.startsWith(`${base}/files/`) ? u.pathname : null;
  } catch { return null; }
}

/** Follow an emulator's event feed forever through ``call`` (its control API): ``resync()`` loads
 *  a snapshot and returns the feed cursor it belongs to (at start, after an outage and after the
 *  emulator restarted), ``apply(ev)`` takes every newer event. */
async function followFeed(name, call, resync, apply) {
  let [delay, fresh, cursor] = [500, true, 0];
  for (;;) {
    try {
      if (fresh) { cursor = await resync(); fresh = false; }
      const r = await call(`/events?after=${cursor}&timeout=25`);
      if (typeof r.cursor === "number" && r.cursor < cursor) { fresh = true; continue; } // restarted
      for (const ev of r.events || []) apply(ev);
      if (typeof r.cursor === "number") cursor = r.cursor;
      delay = 500;
    } catch (err) {
      console.warn(`${name} event stream:`, err);
      fresh = true;
      await sleep(delay + Math.random() * 300);
      delay = Math.min(delay * 2, 15000);
    }
  }
}

let configLoad = null;
/** The page's config (no tokens), asked for until the server answers; every tab shares it. */
function loadConfig() {
  configLoad ??= (async () => {
    for (;;) {
      try {
        const resp = await fetch("/console/config.json");
        if (resp.ok) return await resp.json();
      } catch { /* not up yet */ }
      await sleep(2000);
    }
  })();
  return configLoad;
}

// ---------------------------------------------------------------- messenger tabs of the customer pane

const TAB_KEY = "gwsandbox.tab";
const tabButtons = () => [...document.querySelectorAll("#customer-tabs [role=tab]")];
const tabNames = () => tabButtons().filter((b) => !b.hidden).map((b) => b.id.slice("tab-".length));

/** Show one messenger's panel in the customer pane (Telegram when that tab is not offered);
 *  ``remember``: keep it as the tab to show next time (a person chose it). */
function showTab(name, remember = true) {
  const tab = tabNames().includes(name) ? name : "telegram";
  $("customer-pane").dataset.tab = tab;
  for (const b of tabButtons()) {
    const on = b.id === `tab-${tab}`;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
    document.getElementById(b.getAttribute("aria-controls")).hidden = !on;
  }
  if (remember) store(TAB_KEY, tab);
}

/** Offer a messenger's tab; console_vk.js and console_viber.js call it when the config has
 *  accounts of theirs. The tab bar shows once there is a second tab. */
function addTab(name) {
  document.getElementById(`tab-${name}`).hidden = false;
  $("customer-tabs").hidden = false;
  showTab(recall(TAB_KEY, "telegram"), false); // the remembered tab may be offered only later
}

function wireTabs() {
  for (const b of tabButtons()) b.addEventListener("click", () => showTab(b.id.slice("tab-".length)));
  $("customer-tabs").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const names = tabNames();
    const step = e.key === "ArrowRight" ? 1 : names.length - 1;
    const next = names[(names.indexOf($("customer-pane").dataset.tab) + step) % names.length];
    showTab(next);
    document.getElementById(`tab-${next}`).focus();
  });
}

// ---------------------------------------------------------------- the website tab

/** The "Website" tab: the gateway's demo page with the chat widget, for the first website
 *  chat account of the config (the widget talks to the gateway itself: no emulator). */
loadConfig().then((cfg) => {
  const account = (cfg.websites || [])[0];
  if (!account) return;
  const page = `/webchat/demo/${encodeURIComponent(account)}`;
  $("website-frame").src = page;
  $("website-open").href = page;
  addTab("website");
});
