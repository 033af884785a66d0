/* Messenger gateway — sandbox console.
 *
 * Left pane: a Telegram customer chatting with a company bot (console_tabs.js, console_vk.js and
 * console_viber.js add VK and Viber tabs). Right pane: the staff forum group.
 * The page talks to the Bot API emulator's control API on the same origin; the one call that
 * needs a bot token (posting as the customer) goes through /console/customer_send instead.
 *
 * SECURITY: message content is customer-controlled. It only ever reaches the DOM as text
 * (h() turns strings into text nodes) or as validated attributes — never parsed as markup.
 */
"use strict";

const $ = (id) => document.getElementById(id);
const LS = { customers: "gwsandbox.customers", customer: "gwsandbox.customer", bot: "gwsandbox.bot", operator: "gwsandbox.operator" };
const MAX_FILE = 20 * 1024 * 1024;
const GENERAL = "general"; // key of the forum's General topic (messages without a thread id)

let customerComposer = null; // set up in boot() by makeComposer()
let staffComposer = null;
const S = {
  cfg: null, cursor: 0,
  bot: null, customer: null, customers: [], customerMsgs: [], customerEdit: null,
  operator: null, topics: [], thread: GENERAL, staffMsgs: [], replyTo: null, unread: {}, activity: {},
};

// ---------------------------------------------------------------- helpers

/** Create an element. props are DOM properties (ariaLabel → aria-label attribute); children are
 *  nodes or plain values, which append() turns into text nodes — that is what keeps content safe. */
function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith("aria")) e.setAttribute(`aria-${k.slice(4).toLowerCase()}`, v); else e[k] = v;
  }
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}
const button = (label, props, onclick) => h("button", { type: "button", onclick, ...props }, label);
const link = (href, text, props) => h("a", { href, target: "_blank", rel: "noopener noreferrer", ...props }, text);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const store = (key, value) => { try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* private mode */ } };
const recall = (key, fallback) => { try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; } };
const fileUrl = (fileId) => `${S.cfg.emulator_path}/_control/files/${encodeURIComponent(fileId)}`;
const userName = (u) => (u ? [u.first_name, u.last_name].filter(Boolean).join(" ") || u.username || `#${u.id}` : "?");
const colorOf = (t) => (t && t.icon_color != null ? `#${Number(t.icon_color).toString(16).padStart(6, "0")}` : "");
// A staff message's topic key; messages outside any topic belong to General.
const threadKey = (m) => (m.message_thread_id != null && m.is_topic_message !== false ? String(m.message_thread_id) : GENERAL);
const isStaff = (chatId) => Number(chatId) === S.cfg.staff_chat_id;
// Only real web/Telegram links may become hrefs (blocks javascript: and data: URLs).
const safeUrl = (u) => typeof u === "string" && /^(https?:|tg:|mailto:)/i.test(u);

/** Call the console (paths starting with /console/) or the emulator's control API. */
async function api(path, body) {
  const url = path.startsWith("/console/") ? path : `${S.cfg.emulator_path}/_control${path}`;
  const resp = await fetch(url, body === undefined ? {}
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const raw = await resp.text();
  let data = raw;
  try { data = raw ? JSON.parse(raw) : null; } catch { /* not JSON: keep the text */ }
  if (!resp.ok) {
    const why = data && typeof data === "object" ? data.error || data.description : data;
    throw new Error(`${resp.status}: ${why || resp.statusText}`);
  }
  // Accept both bare results and Bot-API-style {ok, result} envelopes.
  return data && typeof data === "object" && data.ok === true && "result" in data ? data.result : data;
}

let toastTimer = 0;
function toast(text) { // errors are shown in a role="alert" box for a few seconds
  Object.assign($("toast"), { textContent: text, hidden: false });
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { $("toast").hidden = true; }, 5000);
}

/** Insert or replace a message in a list kept sorted by message_id. */
function upsert(list, msg) {
  const i = list.findIndex((m) => m.message_id === msg.message_id);
  if (i >= 0) { list[i] = msg; return; }
  const at = list.findIndex((m) => m.message_id > msg.message_id);
  if (at < 0) list.push(msg); else list.splice(at, 0, msg);
}

const atBottom = (log) => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
function stickToBottom(log) {
  log.scrollTop = log.scrollHeight;
  // Images load after rendering and would push the last message out of view.
  for (const img of log.querySelectorAll("img")) img.addEventListener("load", () => { log.scrollTop = log.scrollHeight; }, { once: true });
}

// ---------------------------------------------------------------- message rendering

const ENTITY_TAGS = { bold: "strong", italic: "em", underline: "u", strikethrough: "s", code: "code",
  pre: "pre", spoiler: "span", blockquote: "blockquote", expandable_blockquote: "blockquote" };

/** Telegram text + entities → DOM. Offsets are UTF-16 units, exactly like JS string indices. */
function richText(text, entities) {
  const root = h("div", { className: "text" });
  const cuts = new Set([0, text.length]);
  for (const e of entities) { cuts.add(e.offset); cuts.add(e.offset + e.length); }
  const points = [...cuts].filter((x) => x >= 0 && x <= text.length).sort((a, b) => a - b);
  // Split the text at every entity boundary; wrap each piece in every entity that covers it.
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]];
    let node = document.createTextNode(text.slice(a, b));
    for (const e of entities) if (e.offset <= a && e.offset + e.length >= b) node = wrapEntity(e, node, text.slice(e.offset, e.offset + e.length));
    root.append(node);
  }
  return root;
}

function wrapEntity(e, child, whole) {
  if (e.type === "url" || e.type === "text_link") {
    const href = e.type === "url" ? (/^[a-z]+:/i.test(whole) ? whole : `https://${whole}`) : e.url;
    return safeUrl(href) ? link(href, child) : child;
  }
  return ENTITY_TAGS[e.type] ? h(ENTITY_TAGS[e.type], { className: e.type === "spoiler" ? "spoiler" : "" }, child) : child;
}

/** Text of a service message (topic created, member joined…), or null for a normal message. */
function serviceText(m) {
  if (m.forum_topic_created) return `Topic “${m.forum_topic_created.name}” created`;
  if (m.forum_topic_edited) return m.forum_topic_edited.name ? `Topic renamed to “${m.forum_topic_edited.name}”` : "Topic edited";
  if (m.forum_topic_closed) return "Topic closed";
  if (m.forum_topic_reopened) return "Topic reopened";
  if (m.new_chat_members) return `${m.new_chat_members.map(userName).join(", ")} joined the group`;
  if (m.left_chat_member) return `${userName(m.left_chat_member)} left the group`;
  if (m.pinned_message) return `${userName(m.from)} pinned a message`;
  return null;
}

const KINDS = ["photo", "document", "voice", "audio", "video", "animation", "video_note", "sticker", "location", "contact"];
/** One-line summary of a message, for reply quotes and the reply bar. */
function snippet(m) {
  const t = m.text ?? m.caption;
  if (t) return t.length > 90 ? `${t.slice(0, 90)}…` : t;
  const kind = KINDS.find((k) => m[k]);
  return kind ? `[${kind}]` : serviceText(m) || "[message]";
}

function appendMedia(box, m) {
  const media = (tag, fileId, label) => box.append(h(tag, tag === "img"
    ? { className: "media", src: fileUrl(fileId), alt: label, loading: "lazy" }
    : { className: "media", src: fileUrl(fileId), controls: true, ariaLabel: label, title: label }));
  if (m.photo && m.photo.length) media("img", m.photo[m.photo.length - 1].file_id, m.caption || "Photo");
  if (m.sticker) media("img", m.sticker.file_id, `Sticker ${m.sticker.emoji || ""}`);
  for (const kind of ["voice", "audio"]) if (m[kind]) media("audio", m[kind].file_id, kind);
  for (const kind of ["video", "animation", "video_note"]) if (m[kind]) media("video", m[kind].file_id, kind);
  const d = !m.animation && m.document; // animations also carry a "document" copy
  if (d) {
    const [name, size] = [d.file_name || "document", d.file_size ? ` · ${Math.max(1, Math.round(d.file_size / 1024))} KB` : ""];
    box.append(link(fileUrl(d.file_id), `📄 ${name}${size}`, { className: "doc", download: name }));
  }
  if (m.location) {
    const [lat, lon] = [Number(m.location.latitude), Number(m.location.longitude)];
    box.append(link(`https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`,
      `📍 Location ${lat.toFixed(5)}, ${lon.toFixed(5)}`));
  }
  if (m.contact) box.append(h("div", { className: "contact" }, `👤 ${userName(m.contact)} · ${m.contact.phone_number}`));
}

/** Render one message. opts: own (right-aligned), sender (show author), presser (user id that
 *  presses inline buttons), actions: [[label, ariaLabel, onClick]]. */
function renderMessage(m, opts) {
  const service = serviceText(m);
  if (service) return h("div", { className: "service" }, service);
  const bubble = h("div", { className: "bubble" });
  if (opts.sender && m.from) bubble.append(h("div", { className: "sender" }, userName(m.from), m.from.is_bot && h("span", { className: "tag" }, "bot")));
  const quoted = m.reply_to_message;
  // In forum topics every message "replies" to the topic's creation message: not a real quote.
  if (quoted && !quoted.forum_topic_created) {
    bubble.append(h("blockquote", { className: "quote" },
      h("div", { className: "quote-from" }, userName(quoted.from)), h("div", { className: "quote-text" }, snippet(quoted))));
  }
  appendMedia(bubble, m);
  const text = m.text ?? m.caption;
  if (text) bubble.append(richText(text, m.entities || m.caption_entities || []));
  if (text && text.startsWith(S.cfg.internal_note_prefix) && !(m.from && m.from.is_bot) && isStaff(m.chat && m.chat.id)) {
    bubble.classList.add("note");
    bubble.prepend(h("div", { className: "note-tag" }, "internal note — not sent to the customer"));
  }
  const keyboard = m.reply_markup && m.reply_markup.inline_keyboard;
  if (keyboard && keyboard.length) bubble.append(renderKeyboard(m, keyboard, opts.presser));
  const time = new Date((m.date || 0) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  bubble.append(h("div", { className: "meta" },
    ...(opts.actions || []).map(([label, aria, onClick]) => button(label, { className: "msg-action", ariaLabel: aria, title: aria }, onClick)),
    m.edit_date && h("span", { className: "edited" }, "edited"),
    h("time", {}, time)));
  return h("div", { className: opts.own ? "msg own" : "msg" }, bubble);
}

/** Inline keyboard: callback buttons are pressed through the control API as `presser`. */
function renderKeyboard(m, rows, presser) {
  const press = async (b, data) => {
    b.disabled = true;
    const bot = m.chat.type === "private" && S.bot ? { bot_id: S.bot.bot_id } : {}; // which private chat
    await api("/press", { user_id: presser, chat_id: m.chat.id, message_id: m.message_id, callback_data: data, ...bot })
      .catch((err) => toast(`Button press failed — ${err.message}`));
    b.disabled = false;
  };
  return h("div", { className: "keyboard" }, ...rows.map((row) => h("div", { className: "kb-row" }, ...row.map((btn) => {
    if (btn.url) return safeUrl(btn.url) ? link(btn.url, `${btn.text} ↗`, { className: "kb-btn" }) : h("span", { className: "kb-btn" }, btn.text);
    const disabled = btn.callback_data === undefined || presser == null;
    return button(btn.text, { className: "kb-btn", disabled }, (e) => press(e.currentTarget, btn.callback_data));
  }))));
}

// ---------------------------------------------------------------- customer pane

/** The private chat's id is the user's id; drop messages from other bots sharing that id. */
const inCustomerChat = (m) => !!(S.customer && S.bot && Number(m.chat && m.chat.id) === S.customer.id
  && (!m.from || m.from.id === S.customer.id || m.from.id === S.bot.bot_id));

function renderCustomer() {
  const log = $("customer-log");
  const stick = atBottom(log);
  const note = (text) => log.replaceChildren(h("p", { className: "empty" }, text));
  if (!S.bot) return note("No customer bot is configured.");
  if (!S.customer) return note("Type a customer name above to start chatting with the bot.");
  if (!S.customerMsgs.length) return note(`Say hello to @${S.bot.username}.`);
  const own = (m) => !!m.from && m.from.id === S.customer.id;
  const lastOwn = [...S.customerMsgs].reverse().find((m) => own(m) && (m.text != null || m.caption != null));
  log.replaceChildren(...S.customerMsgs.map((m) => renderMessage(m, {
    own: own(m), sender: false, presser: S.customer.id,
    actions: m === lastOwn ? [["✏️", "Edit this message", () => startEdit(m)]] : [],
  })));
  if (stick) stickToBottom(log);
}

async function loadCustomerChat() {
  S.customerMsgs = [];
  if (S.customer && S.bot) {
    // The chat only exists once the customer has written (until then the emulator answers 400).
    const msgs = await api(`/chats/${S.customer.id}/messages?bot_id=${S.bot.bot_id}`).catch(() => []);
    for (const m of msgs || []) if (inCustomerChat(m)) upsert(S.customerMsgs, m);
  }
  renderCustomer();
  stickToBottom($("customer-log"));
}

function fillSelect(sel, items, label, value, selected, empty) {
  sel.replaceChildren(...items.map((it) => h("option", { value: value(it), selected: it === selected }, label(it))));
  if (!items.length && empty) sel.append(h("option", {}, empty));
}

function renderCustomerSelect() {
  fillSelect($("customer-select"), S.customers, (c) => `${userName(c)} (#${c.id})`, (c) => c.id, S.customer, "— none yet —");
  $("customer-select").disabled = !S.customers.length;
  $("customer-names").replaceChildren(...S.customers.map((c) => h("option", { value: userName(c) })));
}

function selectCustomer(id) {
  S.customer = S.customers.find((c) => c.id === id) || null;
  cancelEdit();
  store(LS.customer, S.customer ? S.customer.id : null);
  renderCustomerSelect();
  loadCustomerChat().catch((err) => toast(`Could not load the chat — ${err.message}`));
}

/** "Add / select": pick an existing customer by name, or create a new user in the emulator. */
async function addCustomer(name) {
  const existing = S.customers.find((c) => userName(c).toLowerCase() === name.toLowerCase());
  if (existing) return selectCustomer(existing.id);
  const [first, ...rest] = name.split(" ");
  const user = await api("/users", rest.length ? { first_name: first, last_name: rest.join(" ") } : { first_name: first });
  S.customers.push({ id: user.id, first_name: user.first_name, last_name: user.last_name, username: user.username });
  store(LS.customers, S.customers);
  return selectCustomer(user.id);
}

function cancelEdit() { S.customerEdit = null; customerComposer.setContext(null); }

function startEdit(m) {
  S.customerEdit = m;
  customerComposer.ta.value = m.text ?? m.caption ?? "";
  customerComposer.setContext("✏️ Editing your message");
  customerComposer.ta.focus();
}

/** A text/file message as /_control/send fields: a file carries the text as its caption. */
function contentBody(text, file) {
  if (!file) return { text };
  const { kind, name, mime_type, content_b64 } = file;
  return { kind, file: { name, mime_type, content_b64 }, ...(text ? { caption: text } : {}) };
}

async function customerSend(extra) {
  if (!S.customer || !S.bot) throw new Error("Pick or create a customer first");
  const msg = await api("/console/customer_send", { bot_id: S.bot.bot_id, user_id: S.customer.id, ...extra });
  if (msg && msg.message_id && inCustomerChat(msg)) { upsert(S.customerMsgs, msg); renderCustomer(); }
  stickToBottom($("customer-log"));
}

async function submitCustomer(text, file) {
  const m = S.customerEdit;
  if (!m) return customerSend(contentBody(text, file));
  if (!text) throw new Error("The edited text is empty");
  if (file) throw new Error("Remove the attachment: an edit only changes the text");
  const field = m.text != null ? "text" : "caption";
  const edited = await api("/edit", { user_id: S.customer.id, chat_id: S.customer.id, bot_id: S.bot.bot_id, message_id: m.message_id, [field]: text });
  cancelEdit();
  if (edited && edited.message_id) { upsert(S.customerMsgs, edited); renderCustomer(); }
}

// ---------------------------------------------------------------- staff pane

const topicOf = (key) => S.topics.find((t) => String(t.message_thread_id) === key);

function renderTopics() {
  // Live topics first, most recently active first; deleted ones sink to the bottom.
  const sorted = [...S.topics].sort((a, b) => (!!a.deleted - !!b.deleted)
    || ((S.activity[b.message_thread_id] || 0) - (S.activity[a.message_thread_id] || 0))
    || (b.message_thread_id - a.message_thread_id));
  $("topic-list").replaceChildren(...[{ message_thread_id: GENERAL, name: "General" }, ...sorted].map((t) => {
    const key = String(t.message_thread_id);
    const n = S.unread[key] || 0;
    const dot = h("span", { className: "dot", ariaHidden: "true" }, key === GENERAL ? "#" : "");
    dot.style.background = colorOf(t);
    const b = h("button", { type: "button", className: t.deleted ? "topic deleted" : "topic", onclick: () => selectTopic(key) },
      dot, h("span", { className: "topic-name" }, t.name || `Topic ${key}`),
      t.closed && h("span", { className: "marker" }, "🔒 closed"),
      t.deleted && h("span", { className: "marker" }, "deleted"),
      n > 0 && h("span", { className: "badge" }, String(n), h("span", { className: "sr-only" }, " unread")));
    if (key === S.thread) b.setAttribute("aria-current", "true");
    return h("li", {}, b);
  }));
}

function renderTopicHead() {
  const t = topicOf(S.thread);
  $("topic-title").textContent = S.thread === GENERAL ? "General" : (t ? t.name : `Topic ${S.thread}`);
  const state = !t ? "" : t.deleted ? "Deleted — the next customer message should bring it back" : t.closed ? "Closed" : "Open";
  $("topic-sub").textContent = `${state ? `${state} · ` : ""}chat ${S.cfg.staff_chat_id}`;
  $("topic-avatar").style.background = colorOf(t);
  $("delete-topic").disabled = S.thread === GENERAL || !t || !!t.deleted;
}

function renderStaff() {
  const log = $("staff-log");
  const stick = atBottom(log);
  const me = S.operator && S.operator.user_id;
  log.replaceChildren(...(S.staffMsgs.length ? S.staffMsgs.map((m) => {
    const own = !!m.from && m.from.id === me;
    return renderMessage(m, { own, sender: !own, presser: me, actions: [["↩ Reply", "Reply to this message", () => setReply(m)]] });
  }) : [h("p", { className: "empty" }, "No messages in this topic yet.")]));
  if (stick) stickToBottom(log);
}

async function loadTopic() {
  const q = S.thread === GENERAL ? "" : `?thread_id=${encodeURIComponent(S.thread)}`;
  const msgs = await api(`/chats/${S.cfg.staff_chat_id}/messages${q}`).catch((err) => toast(`Staff group: ${err.message}`));
  S.staffMsgs = [];
  for (const m of msgs || []) if (threadKey(m) === S.thread) upsert(S.staffMsgs, m);
  renderStaff();
  stickToBottom($("staff-log"));
}

function selectTopic(key) {
  [S.thread, S.unread[key]] = [key, 0];
  setReply(null);
  renderTopics(); renderTopicHead();
  loadTopic().catch((err) => toast(`Could not load the topic — ${err.message}`));
}

function setReply(m) {
  S.replyTo = m;
  staffComposer.setContext(m ? `↩ Replying to ${userName(m.from)}: ${snippet(m)}` : null);
  if (m) staffComposer.ta.focus();
}

async function submitStaff(text, file) {
  if (!S.operator) throw new Error("No operator configured");
  const body = { user_id: S.operator.user_id, chat_id: S.cfg.staff_chat_id, ...contentBody(text, file) };
  if (S.thread !== GENERAL) body.message_thread_id = Number(S.thread);
  if (S.replyTo) body.reply_to_message_id = S.replyTo.message_id;
  const msg = await api("/send", body);
  setReply(null);
  if (msg && msg.message_id && threadKey(msg) === S.thread) upsert(S.staffMsgs, msg);
  renderStaff();
  stickToBottom($("staff-log"));
}

// ---------------------------------------------------------------- composer (shared by both panes)

/** Wire a composer form: Enter sends, Shift+Enter is a newline, Esc cancels, 📎 attaches a file. */
function makeComposer(form, onSubmit, onCancel) {
  const [ta, fileInput, chip, context] = ["textarea", "input[type=file]", ".chip", ".context"].map((q) => form.querySelector(q));
  const c = { ta, file: null };
  c.setFile = (file) => {
    [c.file, chip.hidden] = [file, !file];
    chip.querySelector(".chip-text").textContent = file ? `📎 ${file.name} (${file.kind})` : "";
  };
  c.setContext = (label) => { context.hidden = !label; context.querySelector(".context-text").textContent = label || ""; };
  const grow = () => { ta.style.height = "auto"; ta.style.height = `${Math.min(ta.scrollHeight, 160)}px`; };
  ta.addEventListener("input", grow);
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
    if (e.key === "Escape" && !context.hidden) { e.preventDefault(); onCancel(); }
  });
  context.querySelector(".context-cancel").addEventListener("click", () => { onCancel(); ta.focus(); });
  chip.querySelector(".chip-remove").addEventListener("click", () => { c.setFile(null); ta.focus(); });
  form.querySelector(".attach").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", async () => {
    const f = fileInput.files[0];
    fileInput.value = "";
    if (!f || f.size > MAX_FILE) { if (f) toast(`${f.name} is too large (max ${MAX_FILE >> 20} MB)`); return; }
    const mime = f.type || "application/octet-stream";
    const kind = /^image\/(jpeg|png|webp)$/.test(mime) ? "photo" : "document"; // photos get compressed previews
    c.setFile({ name: f.name, mime_type: mime, kind, content_b64: await toBase64(f) });
    ta.focus();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = ta.value.trim();
    const send = form.querySelector(".send");
    if ((!text && !c.file) || send.disabled) return; // nothing to send, or still sending
    send.disabled = true;
    try { await onSubmit(text, c.file); ta.value = ""; grow(); c.setFile(null); } catch (err) { toast(`Not sent — ${err.message}`); }
    send.disabled = false;
    ta.focus();
  });
  return c;
}

const toBase64 = (file) => new Promise((resolve, reject) => {
  const r = Object.assign(new FileReader(), { onerror: () => reject(r.error) });
  r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, "")); // strip "data:…;base64,"
  r.readAsDataURL(file);
});

// ---------------------------------------------------------------- live updates

function applyEvent(ev) {
  const m = ev.message;
  const chatId = Number(ev.chat_id ?? (m && m.chat && m.chat.id));
  if (ev.type === "topic" && ev.topic) {
    if (!isStaff(chatId)) return;
    const i = S.topics.findIndex((t) => t.message_thread_id === ev.topic.message_thread_id);
    if (i >= 0) S.topics[i] = { ...S.topics[i], ...ev.topic }; else S.topics.push(ev.topic);
    renderTopics();
    if (String(ev.topic.message_thread_id) !== S.thread) return;
    renderTopicHead();
    if (ev.topic.deleted) { S.staffMsgs = []; renderStaff(); } // a deleted topic takes its messages along
    return;
  }
  // Private-chat events name their bot: ignore the customer's chats with other bots.
  if (ev.bot_id != null && S.bot && ev.bot_id !== S.bot.bot_id) return;
  if (ev.type === "delete") {
    const id = ev.message_id ?? (m && m.message_id);
    const keep = (list) => list.filter((x) => x.message_id !== id);
    if (isStaff(chatId)) { S.staffMsgs = keep(S.staffMsgs); renderStaff(); }
    if (S.customer && chatId === S.customer.id) { S.customerMsgs = keep(S.customerMsgs); renderCustomer(); }
    return;
  }
  if (!m || (ev.type !== "message" && ev.type !== "edit")) return;
  if (isStaff(chatId)) {
    const key = threadKey(m);
    if (ev.type === "message") S.activity[key] = m.date || Date.now() / 1000;
    if (m.forum_topic_created && key !== GENERAL && !topicOf(key)) S.topics.push({ message_thread_id: m.message_thread_id, ...m.forum_topic_created });
    if (key === S.thread) { upsert(S.staffMsgs, m); renderStaff(); }
    else if (ev.type === "message" && !serviceText(m)) S.unread[key] = (S.unread[key] || 0) + 1;
    renderTopics();
  } else if (inCustomerChat(m)) {
    upsert(S.customerMsgs, m);
    renderCustomer();
  }
}

/** Reload everything from the emulator (at start, and after a lost connection). */
async function resync() {
  const st = (await api("/state")) || {};
  // The snapshot's cursor: events racing in after it are re-applied on top (idempotent).
  S.cursor = typeof st.cursor === "number" ? st.cursor : (await api("/events?after=0&timeout=0")).cursor || 0;
  S.topics = (st.topics || {})[String(S.cfg.staff_chat_id)] || [];
  if (typeof st.flood_limits === "boolean") $("flood-toggle").checked = st.flood_limits;
  // Forget remembered customers the emulator no longer knows (it was restarted).
  if (Array.isArray(st.users) && st.users.length) {
    const known = new Set(st.users.map((u) => u.id));
    S.customers = S.customers.filter((c) => known.has(c.id));
    store(LS.customers, S.customers);
    if (S.customer && !known.has(S.customer.id)) S.customer = S.customers[0] || null;
  }
  renderCustomerSelect(); renderTopics(); renderTopicHead();
  await Promise.all([loadCustomerChat(), loadTopic()]);
}

function setConn(state, label) { $("conn").textContent = label; $("conn").dataset.state = state; }

/** Long-poll the emulator's event stream forever, backing off (with jitter) while it is down. */
async function pollLoop() {
  let [delay, fresh] = [500, true];
  for (;;) {
    try {
      if (fresh) {
        await resync();
        fresh = false;
        setConn("live", "live");
      }
      const r = await api(`/events?after=${S.cursor}&timeout=25`);
      if (typeof r.cursor === "number" && r.cursor < S.cursor) { fresh = true; continue; } // emulator restarted
      for (const ev of r.events || []) applyEvent(ev);
      if (typeof r.cursor === "number") S.cursor = r.cursor;
      delay = 500;
    } catch (err) {
      console.warn("event stream:", err);
      fresh = true;
      setConn("down", `reconnecting in ${Math.round(delay / 1000)} s…`);
      await sleep(delay + Math.random() * 300);
      delay = Math.min(delay * 2, 15000);
    }
  }
}

// ---------------------------------------------------------------- faults drawer & start-up

async function fault(path, body, done) {
  const out = $("fault-status");
  try { await api(path, body); out.textContent = done; return true; } catch (err) { out.textContent = `Failed — ${err.message}`; return false; }
}

function renderBotHead() {
  $("bot-title").textContent = S.bot ? `@${S.bot.username}` : "No bot configured";
  $("bot-sub").textContent = S.bot ? `bot · ${S.bot.account}` : "";
  $("bot-avatar").textContent = S.bot ? S.bot.username.slice(0, 1).toUpperCase() : "?";
}

function wireCustomer(bots) {
  customerComposer = makeComposer($("customer-composer"), submitCustomer, () => { cancelEdit(); customerComposer.ta.value = ""; });
  $("bot-select").addEventListener("change", (e) => {
    S.bot = bots.find((b) => String(b.bot_id) === e.target.value) || null;
    store(LS.bot, S.bot && S.bot.bot_id);
    renderBotHead();
    selectCustomer(S.customer && S.customer.id);
  });
  $("customer-select").addEventListener("change", (e) => selectCustomer(Number(e.target.value)));
  $("customer-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("customer-name").value.trim().replace(/\s+/g, " ");
    if (!name) return;
    try { await addCustomer(name); $("customer-name").value = ""; customerComposer.ta.focus(); }
    catch (err) { toast(`Could not create the customer — ${err.message}`); }
  });
  const quick = (extra) => customerSend(extra).catch((err) => toast(`Not sent — ${err.message}`));
  // A fixed demo spot (central Amsterdam) with a little jitter so repeated shares differ.
  $("share-location").addEventListener("click", () => quick({
    location: { latitude: 52.3731 + Math.random() / 200, longitude: 4.8922 + Math.random() / 200 } }));
  // The customer's "own" contact card, with a fake phone number derived from their id.
  $("share-contact").addEventListener("click", () => (!S.customer ? toast("Pick or create a customer first") : quick({ contact: {
    phone_number: `+1555${String(S.customer.id).slice(-7).padStart(7, "0")}`,
    first_name: S.customer.first_name, last_name: S.customer.last_name } })));
}

function wireStaff(operators) {
  staffComposer = makeComposer($("staff-composer"), submitStaff, () => setReply(null));
  $("operator-select").addEventListener("change", (e) => {
    S.operator = operators.find((o) => String(o.user_id) === e.target.value) || null;
    store(LS.operator, S.operator && S.operator.user_id);
    renderStaff();
  });
  $("delete-topic").addEventListener("click", async () => {
    const t = topicOf(S.thread);
    if (!t || !window.confirm(`Delete topic “${t.name}”? The gateway should recreate it on the next customer message.`)) return;
    await api("/delete_topic", { chat_id: S.cfg.staff_chat_id, message_thread_id: t.message_thread_id })
      .catch((err) => toast(`Could not delete the topic — ${err.message}`));
  });
  $("fault-429").addEventListener("click", () => fault("/faults", { method: "sendMessage", status: 429, retry_after: 3, count: 1 },
    "The next sendMessage gets 429 (retry after 3 s)."));
  $("fault-500").addEventListener("click", () => fault("/faults", { method: "sendMessage", status: 500, count: 1 },
    "The next sendMessage gets 500."));
  $("flood-toggle").addEventListener("change", async (e) => {
    const on = e.target.checked;
    if (!(await fault("/flood", { enabled: on }, on ? "Real flood limits are on." : "Flood limits are off."))) e.target.checked = !on;
  });
}

async function boot() {
  wireTabs();
  S.cfg = await loadConfig();
  const { customer_bots: bots, operators } = S.cfg;
  S.bot = bots.find((b) => b.bot_id === recall(LS.bot, null)) || bots[0] || null;
  S.operator = operators.find((o) => o.user_id === recall(LS.operator, null)) || operators[0] || null;
  S.customers = recall(LS.customers, []).filter((c) => c && Number.isInteger(c.id));
  S.customer = S.customers.find((c) => c.id === recall(LS.customer, null)) || S.customers[0] || null;

  fillSelect($("bot-select"), bots, (b) => `@${b.username} (${b.account})`, (b) => b.bot_id, S.bot);
  $("bot-field").hidden = bots.length < 2;
  fillSelect($("operator-select"), operators, (o) => o.name, (o) => o.user_id, S.operator, "— none —");
  $("operator-select").disabled = operators.length < 2;
  wireCustomer(bots);
  wireStaff(operators);
  renderBotHead();
  renderCustomerSelect();
  renderCustomer();
  pollLoop();
}

document.addEventListener("DOMContentLoaded", boot);
