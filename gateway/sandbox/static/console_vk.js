/* Messenger gateway — sandbox console, VK tab.
 *
 * A VK customer writing to a community (one per configured `kind: vk` channel). Everything goes
 * through the VK emulator's control API on the same origin (cfg.vk.path + "/_control"), which
 * refers to communities by id: no community credential is ever involved. Loaded after console.js
 * and reuses its helpers (h, button, link, toast, makeComposer, …).
 *
 * SECURITY: as in console.js, message content only reaches the DOM as text nodes or validated
 * attributes; images are shown only from the emulator's own file URLs (the page's CSP allows
 * nothing else anyway).
 */
"use strict";

const VK_LS = { group: "gwsandbox.vk.group", user: "gwsandbox.vk.user" };
const V = { path: "", groups: [], servers: {}, group: null, users: [], user: null, msgs: [], readUpTo: 0, allowed: false, edit: null, composer: null };

/** Call the VK emulator's control API. */
const vkApi = (path, body) => controlApi(V.path, path, body);
/** An emulator file URL as a same-origin path; null for anything else (VK's default avatars). */
const vkFile = (url) => emulatorFile(V.path, url);

const vkName = (u) => (u ? `${u.first_name} ${u.last_name || ""}`.trim() : "?");
const mine = (m) => m.out === 0;

// ---------------------------------------------------------------- rendering

function vkSnippet(m) {
  if (m.text) return m.text.length > 90 ? `${m.text.slice(0, 90)}…` : m.text;
  const a = (m.attachments || [])[0];
  return a ? `[${a.type}]` : m.geo ? "[location]" : "[message]";
}

function vkAttachment(box, a) {
  const body = a[a.type] || {};
  const img = (url, alt) => { const src = vkFile(url); if (src) box.append(h("img", { className: "media", src, alt, loading: "lazy" })); };
  if (a.type === "photo") { const sizes = body.sizes || []; if (sizes.length) img(sizes[sizes.length - 1].url, "Photo"); }
  else if (a.type === "sticker") { const imgs = body.images || []; if (imgs.length) img(imgs[Math.min(1, imgs.length - 1)].url, "Sticker"); }
  else if (a.type === "audio_message") { const src = vkFile(body.link_ogg || body.link_mp3); if (src) box.append(h("audio", { className: "media", src, controls: true, ariaLabel: "Voice message" })); }
  else if (a.type === "doc") {
    const src = vkFile(body.url);
    const label = `📄 ${body.title || "document"}${body.size ? ` · ${Math.max(1, Math.round(body.size / 1024))} KB` : ""}`;
    box.append(src ? link(src, label, { className: "doc", download: body.title || "document" }) : h("div", { className: "doc" }, label));
  } else if (a.type === "link") box.append(safeUrl(body.url) ? link(body.url, `🔗 ${body.title || body.url}`) : h("div", {}, "🔗 link"));
  else if (a.type === "video") box.append(h("div", { className: "contact" }, `🎬 ${body.title || "Video"}`));
  else if (a.type === "wall") box.append(h("div", { className: "contact" }, `📰 ${body.text || "Post"}`));
  else box.append(h("div", { className: "contact" }, `[${a.type}]`));
}

/** Text buttons of a community keyboard: pressing one sends its label, as the VK app does. */
function vkKeyboard(keyboard) {
  const rows = (keyboard && keyboard.buttons) || [];
  if (!rows.length) return null;
  return h("div", { className: "keyboard" }, ...rows.map((row) => h("div", { className: "kb-row" }, ...row.map((b) => {
    const action = b.action || {};
    if (action.type === "open_link" && safeUrl(action.link)) return link(action.link, `${action.label || action.link} ↗`, { className: "kb-btn" });
    if (action.type !== "text") return h("span", { className: "kb-btn" }, action.label || action.type || "button");
    return button(action.label || "…", { className: "kb-btn" }, () => vkSend({ text: action.label || "" }).catch((err) => toast(`Not sent — ${err.message}`)));
  }))));
}

function vkMessage(m, lastOwn) {
  const bubble = h("div", { className: "bubble" });
  if (!mine(m)) bubble.append(h("div", { className: "sender" }, V.group ? V.group.name : "Community"));
  if (m.reply_message) bubble.append(h("blockquote", { className: "quote" }, h("div", { className: "quote-text" }, vkSnippet(m.reply_message))));
  for (const f of m.fwd_messages || []) bubble.append(h("blockquote", { className: "quote" }, h("div", { className: "quote-from" }, "↪ forwarded"), h("div", { className: "quote-text" }, vkSnippet(f))));
  for (const a of m.attachments || []) vkAttachment(bubble, a);
  if (m.geo && m.geo.coordinates) {
    const [lat, lon] = [Number(m.geo.coordinates.latitude), Number(m.geo.coordinates.longitude)];
    bubble.append(link(`https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`, `📍 Location ${lat.toFixed(5)}, ${lon.toFixed(5)}`));
  }
  if (m.text) bubble.append(h("div", { className: "text" }, m.text));
  const kb = vkKeyboard(m.keyboard);
  if (kb) bubble.append(kb);
  const time = new Date((m.date || 0) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  bubble.append(h("div", { className: "meta" },
    m === lastOwn && button("✏️", { className: "msg-action", ariaLabel: "Edit this message", title: "Edit this message" }, () => vkStartEdit(m)),
    m.update_time && h("span", { className: "edited" }, "edited"),
    mine(m) && m.id <= V.readUpTo && h("span", { title: "The community marked it as read" }, "✓✓"),
    h("time", {}, time)));
  return h("div", { className: mine(m) ? "msg own" : "msg" }, bubble);
}

function vkRender() {
  const log = $("vk-log");
  const stick = atBottom(log);
  const note = (text) => log.replaceChildren(h("p", { className: "empty" }, text));
  $("vk-permission").textContent = V.allowed ? "🚫 Deny messages" : "✅ Allow messages";
  $("vk-permission").disabled = !V.group || !V.user;
  if (!V.group) return note("No VK community is configured (add a `kind: vk` channel).");
  if (!V.user) return note("Add a VK customer above to start writing to the community.");
  if (!V.msgs.length) return note(`Say hello to ${V.group.name}.`);
  const lastOwn = [...V.msgs].reverse().find((m) => mine(m) && m.text);
  log.replaceChildren(...V.msgs.map((m) => vkMessage(m, lastOwn)));
  if (stick) stickToBottom(log);
}

function vkUpsert(m) {
  const i = V.msgs.findIndex((x) => x.id === m.id);
  if (i >= 0) V.msgs[i] = m; else { V.msgs.push(m); V.msgs.sort((a, b) => a.id - b.id); }
}

/** How the gateway hears the community: its callback server's status in the emulator. */
function vkLink() {
  const states = (V.servers[V.group.group_id] || []).map((s) => s.status);
  if (states.includes("ok")) return "gateway connected (Callback API)";
  return states.length ? `Callback API: ${states[0]}…` : "gateway not connected yet";
}

function vkHead() {
  $("vk-title").textContent = V.group ? V.group.name : "No VK community configured";
  $("vk-sub").textContent = V.group ? `community · ${V.group.account} · club${V.group.group_id} · ${vkLink()}` : "";
  fillSelect($("vk-group-select"), V.groups, (g) => `${g.name} (${g.account})`, (g) => g.group_id, V.group, "— none —");
  fillSelect($("vk-customer-select"), V.users, (u) => `${vkName(u)} (id${u.id})`, (u) => u.id, V.user, "— none yet —");
  $("vk-customer-select").disabled = !V.users.length;
}

// ---------------------------------------------------------------- actions

async function vkLoad() {
  V.msgs = []; V.readUpTo = 0; V.allowed = false;
  if (V.group && V.user) {
    const chat = await vkApi(`/conversations/${V.group.group_id}/${V.user.id}`);
    V.msgs = chat.messages || []; V.readUpTo = chat.read_up_to || 0; V.allowed = !!chat.allowed;
  }
  vkRender();
  stickToBottom($("vk-log"));
}

function vkSelect() {
  store(VK_LS.group, V.group && V.group.group_id);
  store(VK_LS.user, V.user && V.user.id);
  vkCancelEdit();
  vkHead();
  vkLoad().catch((err) => toast(`Could not load the VK chat — ${err.message}`));
}

async function vkSend(extra) {
  if (!V.group || !V.user) throw new Error("Pick a community and a customer first");
  const m = await vkApi("/send", { group_id: V.group.group_id, user_id: V.user.id, ...extra });
  if (m && m.id) { vkUpsert(m); V.allowed = true; vkRender(); }
  stickToBottom($("vk-log"));
}

async function vkSubmit(text, file) {
  if (V.edit) {
    if (!text || file) throw new Error("An edit changes the text only");
    const m = await vkApi("/edit", { group_id: V.group.group_id, user_id: V.user.id, message_id: V.edit.id, text });
    vkCancelEdit();
    vkUpsert(m); vkRender();
    return;
  }
  if (!file) return vkSend({ text });
  const kind = file.kind === "photo" ? "photo" : /^audio\/ogg/.test(file.mime_type) ? "voice" : "doc";
  return vkSend({ text, kind, file: { name: file.name, mime_type: file.mime_type, content_b64: file.content_b64 } });
}

function vkStartEdit(m) {
  V.edit = m;
  V.composer.ta.value = m.text || "";
  V.composer.setContext("✏️ Editing your message");
  V.composer.ta.focus();
}

function vkCancelEdit() { V.edit = null; if (V.composer) V.composer.setContext(null); }

async function vkAddUser(name) {
  const [first, ...rest] = name.split(" ");
  const user = await vkApi("/users", { first_name: first, last_name: rest.join(" ") });
  V.users.push(user);
  V.user = user;
  vkSelect();
}

// ---------------------------------------------------------------- live updates

function vkApply(ev) {
  if (!V.group || !V.user || ev.group_id !== V.group.group_id || ev.peer_id !== V.user.id) return;
  if ((ev.type === "message" || ev.type === "edit") && ev.message) vkUpsert(ev.message);
  else if (ev.type === "read") V.readUpTo = Math.max(V.readUpTo, ev.up_to || 0);
  else if (ev.type === "allow" || ev.type === "deny") V.allowed = ev.type === "allow";
  vkRender();
}

/** The state snapshot the feed continues from. */
async function vkResync() {
  const st = await vkApi("/state");
  for (const g of st.groups || []) V.servers[g.id] = g.callback_servers || [];
  V.users = st.users || [];
  V.user = V.users.find((u) => u.id === (V.user ? V.user.id : recall(VK_LS.user, null))) || V.users[0] || null;
  vkHead();
  await vkLoad();
  return st.cursor || 0;
}

/** Until every community's callback server is confirmed (the gateway registers it while
 *  starting), re-read the state every 2 s so the header shows when the gateway is connected. */
async function vkWatchLink() {
  const linked = () => V.groups.every((g) => (V.servers[g.group_id] || []).some((x) => x.status === "ok"));
  while (!linked()) {
    await sleep(2000);
    try {
      const st = await vkApi("/state");
      for (const g of st.groups || []) V.servers[g.id] = g.callback_servers || [];
      vkHead();
    } catch { /* the event loop reports the outage */ }
  }
}

// ---------------------------------------------------------------- start-up

async function vkBoot() {
  const cfg = await loadConfig();
  if (!cfg.vk || !cfg.vk.groups.length) return; // no VK channel: no VK tab
  V.path = cfg.vk.path;
  V.groups = cfg.vk.groups;
  V.group = V.groups.find((g) => g.group_id === recall(VK_LS.group, null)) || V.groups[0];
  addTab("vk");
  V.composer = makeComposer($("vk-composer"), vkSubmit, () => { vkCancelEdit(); V.composer.ta.value = ""; });
  $("vk-group-select").addEventListener("change", (e) => { V.group = V.groups.find((g) => String(g.group_id) === e.target.value) || null; vkSelect(); });
  $("vk-customer-select").addEventListener("change", (e) => { V.user = V.users.find((u) => String(u.id) === e.target.value) || null; vkSelect(); });
  $("vk-customer-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("vk-customer-name").value.trim().replace(/\s+/g, " ");
    if (!name) return;
    try { await vkAddUser(name); $("vk-customer-name").value = ""; V.composer.ta.focus(); }
    catch (err) { toast(`Could not create the customer — ${err.message}`); }
  });
  $("vk-permission").addEventListener("click", async () => {
    if (!V.group || !V.user) return;
    try {
      await vkApi(V.allowed ? "/deny" : "/allow", { group_id: V.group.group_id, user_id: V.user.id });
      V.allowed = !V.allowed; vkRender();
    } catch (err) { toast(`Could not change the permission — ${err.message}`); }
  });
  const quick = (extra) => vkSend(extra).catch((err) => toast(`Not sent — ${err.message}`));
  $("vk-share-location").addEventListener("click", () => quick({ geo: { latitude: 55.7558 + Math.random() / 200, longitude: 37.6173 + Math.random() / 200 } }));
  $("vk-sticker").addEventListener("click", () => quick({ sticker: true }));
  vkHead();
  vkRender();
  followFeed("VK", vkApi, vkResync, vkApply);
  vkWatchLink();
}

document.addEventListener("DOMContentLoaded", vkBoot);
