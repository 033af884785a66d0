/* Messenger gateway — sandbox console, Viber tab.
 *
 * A Viber customer writing to a bot (one per configured `kind: viber` channel): open the chat
 * (which may bring the bot's welcome message), subscribe or unsubscribe, write, send a picture,
 * video, file, contact, location or sticker, and mark the bot's messages seen. The bot's messages
 * show whether Viber reported them delivered, seen or failed.
 *
 * Everything goes through the Viber emulator's control API on the same origin
 * (cfg.viber.path + "/_control"), which names bots by their public id ("pa:…"): no bot credential
 * is ever involved. Viber's message ids are 64-bit numbers a browser's JSON cannot hold exactly,
 * so the page only uses their string form (message_token_str). Loaded after console.js and reuses
 * its helpers (h, button, link, toast, makeComposer, controlApi, followFeed, addTab, …).
 *
 * SECURITY: as in console.js, message content only reaches the DOM as text nodes or validated
 * attributes; pictures are shown only from the emulator's own file URLs.
 */
"use strict";

const VB_LS = { bot: "gwsandbox.viber.bot", user: "gwsandbox.viber.user" };
const VB = { path: "", bots: [], hooks: {}, bot: null, users: [], user: null, msgs: [], subscribed: false, opened: false, composer: null };
const STICKERS = [40100, 40101, 40108, 40122, 40132];
const RECEIPTS = { sent: ["✓", "Accepted by Viber"], delivered: ["✓✓", "Delivered to the phone"], seen: ["👀", "Seen"], failed: ["⚠️", "Not delivered"] };

/** Call the Viber emulator's control API. */
const vbApi = (path, body) => controlApi(VB.path, path, body);
/** An emulator file URL as a same-origin path; null for anything else (e.g. a bot's avatar). */
const vbFile = (url) => emulatorFile(VB.path, url);
const vbMine = (m) => m.direction === "in";
const vbWho = () => ({ bot_id: VB.bot.bot_id, user_id: VB.user.id });

// ---------------------------------------------------------------- rendering

function vbMedia(box, m) {
  const src = vbFile(m.local_url || m.media);
  const size = m.size ? ` · ${Math.max(1, Math.round(m.size / 1024))} KB` : "";
  if ((m.type === "picture" || m.type === "sticker") && src) box.append(h("img", { className: "media", src, alt: m.type, loading: "lazy" }));
  else if (m.type === "video") box.append(src ? h("video", { className: "media", src, controls: true, ariaLabel: "Video" }) : h("div", { className: "doc" }, `🎬 video${size}`));
  else if (m.type === "file") {
    const label = `📄 ${m.file_name || "file"}${size}`;
    box.append(src ? link(src, label, { className: "doc", download: m.file_name || "file" }) : h("div", { className: "doc" }, label));
  } else if (m.type === "contact" && m.contact) box.append(h("div", { className: "contact" }, `👤 ${m.contact.name} · ${m.contact.phone_number}`));
  else if (m.type === "location" && m.location) {
    const [lat, lon] = [Number(m.location.lat), Number(m.location.lon)];
    box.append(link(`https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`, `📍 Location ${lat.toFixed(5)}, ${lon.toFixed(5)}`));
  } else if (m.type === "url") box.append(safeUrl(m.media) ? link(m.media, `🔗 ${m.media}`) : h("div", {}, "🔗 link"));
  else if (m.type === "rich_media") box.append(vbButtons((m.rich_media || {}).Buttons) || h("div", { className: "contact" }, `[${m.alt_text || "rich media"}]`));
}

/** Keyboard and rich-media buttons: a reply button sends its ActionBody, as the Viber app does. */
function vbButtons(buttons) {
  if (!Array.isArray(buttons) || !buttons.length) return null;
  return h("div", { className: "keyboard" }, h("div", { className: "kb-row" }, ...buttons.map((b) => {
    const label = b.Text || b.ActionBody || "button";
    if (b.ActionType === "open-url" && safeUrl(b.ActionBody)) return link(b.ActionBody, `${label} ↗`, { className: "kb-btn" });
    if (b.ActionType && b.ActionType !== "reply") return h("span", { className: "kb-btn" }, label);
    return button(label, { className: "kb-btn" }, () => vbSend({ text: String(b.ActionBody || label) }).catch((err) => toast(`Not sent — ${err.message}`)));
  })));
}

function vbReceipt(m) {
  const [mark, title] = RECEIPTS[m.status] || ["", ""];
  return mark && h("span", { className: `receipt ${m.status}`, title: m.desc ? `${title}: ${m.desc}` : title }, mark);
}

function vbMessage(m) {
  const bubble = h("div", { className: "bubble" });
  if (!vbMine(m)) bubble.append(h("div", { className: "sender" }, (m.sender && m.sender.name) || "Bot", m.welcome && h("span", { className: "tag" }, "welcome")));
  vbMedia(bubble, m);
  if (m.text) bubble.append(h("div", { className: "text" }, m.text));
  if (m.status === "failed" && m.desc) bubble.append(h("div", { className: "hint" }, `⚠️ ${m.desc}`));
  const kb = vbButtons(m.keyboard && m.keyboard.Buttons);
  if (kb) bubble.append(kb);
  const time = new Date(m.timestamp || 0).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const unseen = !vbMine(m) && (m.status === "sent" || m.status === "delivered") && !m.welcome;
  bubble.append(h("div", { className: "meta" },
    unseen && button("👁", { className: "msg-action", ariaLabel: "Mark as seen", title: "Mark as seen" }, () => vbSeen([m])),
    !vbMine(m) && vbReceipt(m),
    h("time", {}, time)));
  return h("div", { className: vbMine(m) ? "msg own" : "msg" }, bubble);
}

function vbRender() {
  const log = $("viber-log");
  const stick = atBottom(log);
  const note = (text) => log.replaceChildren(h("p", { className: "empty" }, text));
  $("viber-subscription").textContent = VB.subscribed ? "🔕 Unsubscribe" : "🔔 Subscribe";
  for (const id of ["viber-subscription", "viber-open"]) $(id).disabled = !VB.bot || !VB.user;
  if (!VB.bot) return note("No Viber bot is configured (add a `kind: viber` channel).");
  if (!VB.user) return note("Add a Viber customer above to start.");
  if (!VB.msgs.length) return note(`Open the chat with ${VB.bot.name}, or just say hello.`);
  log.replaceChildren(...VB.msgs.map(vbMessage));
  if (stick) stickToBottom(log);
}

function vbUpsert(m) {
  const i = VB.msgs.findIndex((x) => x.message_token_str === m.message_token_str);
  if (i >= 0) VB.msgs[i] = m; else VB.msgs.push(m);
}

function vbHead() {
  const hook = VB.bot && VB.hooks[VB.bot.bot_id];
  const state = hook ? "gateway connected (webhook set)" : "gateway not connected yet";
  $("viber-title").textContent = VB.bot ? VB.bot.name : "No Viber bot configured";
  $("viber-sub").textContent = VB.bot ? `bot · ${VB.bot.account} · ${state} · ${VB.subscribed ? "subscribed" : "not subscribed"}` : "";
  fillSelect($("viber-bot-select"), VB.bots, (b) => `${b.name} (${b.account})`, (b) => b.bot_id, VB.bot, "— none —");
  fillSelect($("viber-customer-select"), VB.users, (u) => u.name, (u) => u.id, VB.user, "— none yet —");
  $("viber-customer-select").disabled = !VB.users.length;
}

// ---------------------------------------------------------------- actions

async function vbLoad() {
  VB.msgs = []; VB.subscribed = false; VB.opened = false;
  if (VB.bot && VB.user) {
    const chat = await vbApi(`/conversation?${new URLSearchParams(vbWho())}`);
    [VB.msgs, VB.subscribed, VB.opened] = [chat.messages || [], !!chat.subscribed, !!chat.opened];
  }
  vbHead();
  vbRender();
  stickToBottom($("viber-log"));
}

function vbSelect() {
  store(VB_LS.bot, VB.bot && VB.bot.bot_id);
  store(VB_LS.user, VB.user && VB.user.id);
  vbLoad().catch((err) => toast(`Could not load the Viber chat — ${err.message}`));
}

async function vbSend(extra) {
  if (!VB.bot || !VB.user) throw new Error("Pick a bot and a customer first");
  const m = await vbApi("/send", { ...vbWho(), ...extra });
  vbUpsert(m);
  VB.subscribed = true; // writing subscribes, as in Viber
  vbHead(); vbRender();
  stickToBottom($("viber-log"));
}

function vbSubmit(text, file) {
  if (!file) return vbSend({ text });
  const kind = /^image\/(jpeg|png|gif)$/.test(file.mime_type) ? "picture" : /^video\//.test(file.mime_type) ? "video" : "file";
  if (text && kind === "file") throw new Error("A file goes without text in Viber");
  return vbSend({ text, kind, file: { name: file.name, mime_type: file.mime_type, content_b64: file.content_b64 } });
}

async function vbSeen(messages) {
  for (const m of messages) {
    try { vbUpsert(await vbApi("/seen", { ...vbWho(), message_token: m.message_token_str })); }
    catch (err) { toast(`Could not mark it seen — ${err.message}`); }
  }
  vbRender();
}

async function vbAddUser(name) {
  const user = await vbApi("/users", { name });
  VB.users.push(user);
  VB.user = user;
  vbSelect();
}

// ---------------------------------------------------------------- live updates

function vbApply(ev) {
  if (ev.type === "webhook") { VB.hooks[ev.bot_id] = ev.url || null; vbHead(); return; }
  if (!VB.bot || !VB.user || ev.bot_id !== VB.bot.bot_id || ev.user_id !== VB.user.id) return;
  if ((ev.type === "message" || ev.type === "status") && ev.message) vbUpsert(ev.message);
  else if (ev.type === "subscribed" || ev.type === "unsubscribed") VB.subscribed = ev.type === "subscribed";
  else if (ev.type === "conversation_started") VB.opened = true;
  vbHead();
  vbRender();
}

async function vbResync() {
  const st = await vbApi("/state");
  for (const b of st.bots || []) VB.hooks[b.id] = b.webhook;
  VB.users = st.users || [];
  VB.user = VB.users.find((u) => u.id === (VB.user ? VB.user.id : recall(VB_LS.user, null))) || VB.users[0] || null;
  await vbLoad();
  return st.cursor || 0;
}

// ---------------------------------------------------------------- start-up

async function vbBoot() {
  const cfg = await loadConfig();
  if (!cfg.viber || !cfg.viber.bots.length) return; // no Viber channel: no Viber tab
  VB.path = cfg.viber.path;
  VB.bots = cfg.viber.bots;
  VB.bot = VB.bots.find((b) => b.bot_id === recall(VB_LS.bot, null)) || VB.bots[0];
  addTab("viber");
  VB.composer = makeComposer($("viber-composer"), vbSubmit, () => { VB.composer.ta.value = ""; });
  $("viber-bot-select").addEventListener("change", (e) => { VB.bot = VB.bots.find((b) => b.bot_id === e.target.value) || null; vbSelect(); });
  $("viber-customer-select").addEventListener("change", (e) => { VB.user = VB.users.find((u) => u.id === e.target.value) || null; vbSelect(); });
  $("viber-customer-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("viber-customer-name").value.trim().replace(/\s+/g, " ");
    if (!name) return;
    try { await vbAddUser(name); $("viber-customer-name").value = ""; VB.composer.ta.focus(); }
    catch (err) { toast(`Could not create the customer — ${err.message}`); }
  });
  const act = (what, run) => run().catch((err) => toast(`${what} — ${err.message}`));
  $("viber-open").addEventListener("click", () => act("Could not open the chat", () => vbApi("/open", vbWho())));
  $("viber-subscription").addEventListener("click", () => act("Could not change the subscription",
    () => vbApi(VB.subscribed ? "/unsubscribe" : "/subscribe", vbWho())));
  const quick = (extra) => act("Not sent", () => vbSend(extra));
  $("viber-share-location").addEventListener("click", () => quick({ location: { lat: 50.4501 + Math.random() / 200, lon: 30.5234 + Math.random() / 200 } }));
  // The customer's own contact card, with a fake phone number derived from their id.
  $("viber-share-contact").addEventListener("click", () => quick({ contact: {
    name: VB.user ? VB.user.name : "Customer",
    phone_number: `+38050${[...(VB.user ? VB.user.id : "0")].reduce((n, c) => (n * 31 + c.charCodeAt(0)) % 9000000, 7) + 1000000}` } }));
  $("viber-sticker").addEventListener("click", () => quick({ sticker_id: STICKERS[Math.floor(Math.random() * STICKERS.length)] }));
  $("viber-seen-all").addEventListener("click", () => vbSeen(VB.msgs.filter((m) => !vbMine(m) && !m.welcome && (m.status === "sent" || m.status === "delivered"))));
  vbHead();
  vbRender();
  followFeed("Viber", vbApi, vbResync, vbApply);
}

document.addEventListener("DOMContentLoaded", vbBoot);
