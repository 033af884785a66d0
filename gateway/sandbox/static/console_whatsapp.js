/* Messenger gateway — sandbox console, WhatsApp tab.
 *
 * A WhatsApp customer writing to a business number (one per configured `kind: whatsapp` channel):
 * write, send a photo, document, voice message, location or contact, quote a message, react,
 * press the reply buttons the business sent, and read the business's messages (blue ticks). The
 * business's messages show their status as WhatsApp reports it (sent, delivered, read, failed
 * with the reason) and templates are labelled as such.
 *
 * The 24-hour customer service window: WhatsApp only takes free-form messages from a business
 * within 24 hours of the customer's last message. The "+25 h" button moves the emulator's clock
 * (WhatsApp's time); the gateway keeps the real time, so its own check still sees a recent
 * message and sends — and WhatsApp refuses with error 131047. That refusal never reaches the
 * customer's chat: it shows in the staff topic as "⚠️ Not delivered to the customer: more than
 * 24 hours since the customer last wrote…". A template (/template NAME args… in the topic) still
 * goes through; the customer writing again reopens the window.
 *
 * Everything goes through the WhatsApp emulator's control API on the same origin
 * (cfg.whatsapp.path + "/_control"), which names numbers by their phone number id: no credential
 * of the business is ever involved. Loaded after console.js and console_tabs.js, whose helpers
 * it reuses (h, button, link, toast, makeComposer, controlApi, followFeed, addTab, …).
 *
 * SECURITY: as in console.js, message content only reaches the DOM as text nodes or validated
 * attributes; files are shown only from the emulator's own media route, built here from an id.
 */
"use strict";

const WA_LS = { number: "gwsandbox.whatsapp.number", user: "gwsandbox.whatsapp.user" };
const WA = { path: "", numbers: [], hooks: {}, number: null, users: [], user: null, msgs: [], windowOpen: false, skew: 0, templates: [], composer: null, replyTo: null };
const WA_STATUS = { accepted: ["🕓", "Accepted by WhatsApp"], sent: ["✓", "Sent"], delivered: ["✓✓", "Delivered to the phone"], read: ["✓✓", "Read"], failed: ["⚠️", "Not delivered"] };
const WA_REACTIONS = ["👍", "❤️"];
const WA_HOURS = 25;
/** A tiny Ogg/Opus-looking clip: the emulator only needs bytes to make a voice message of. */
const WA_VOICE = "T2dnUwACAAAAAAAAAAAAAAAAAAAAAAAAAABPcHVzSGVhZAEBOAGAPgAAAAAA";

/** Call the WhatsApp emulator's control API. */
const waApi = (path, body) => controlApi(WA.path, path, body);
/** The emulator's control route for a stored file (an id of digits; anything else: none). */
const waMedia = (id) => (/^\d+$/.test(String(id || "")) ? `${WA.path}/_control/media/${id}` : null);
const waMine = (m) => m.direction === "in";
const waWho = () => ({ phone_number_id: WA.number.phone_number_id, wa_id: WA.user.wa_id });
const waAct = (what, run) => run().catch((err) => toast(`${what} — ${err.message}`));

// ---------------------------------------------------------------- rendering

function waMediaBox(box, m) {
  const p = m.payload || {};
  const src = waMedia(m.media_id);
  const size = m.size ? ` · ${Math.max(1, Math.round(m.size / 1024))} KB` : "";
  if ((m.type === "image" || m.type === "sticker") && src) box.append(h("img", { className: "media", src, alt: m.type, loading: "lazy" }));
  else if (m.type === "audio") {
    const label = p.voice ? "🎤 Voice message" : "🎵 Audio";
    box.append(h("div", { className: "doc" }, `${label}${size}`), src && h("audio", { className: "media", src, controls: true, ariaLabel: label }));
  } else if (m.type === "video") box.append(src ? h("video", { className: "media", src, controls: true, ariaLabel: "Video" }) : h("div", { className: "doc" }, `🎬 video${size}`));
  else if (m.type === "document") {
    const name = m.filename || p.filename || "file";
    box.append(src ? link(src, `📄 ${name}${size}`, { className: "doc", download: name }) : h("div", { className: "doc" }, `📄 ${name}${size}`));
  } else if (["image", "sticker"].includes(m.type)) box.append(h("div", { className: "doc" }, `🖼 ${m.type} (${p.link ? "by link" : "not fetched yet"})`));
  else if (m.type === "location") {
    const [lat, lon] = [Number(p.latitude), Number(p.longitude)];
    const label = `📍 ${p.name ? `${p.name} · ` : ""}${lat.toFixed(5)}, ${lon.toFixed(5)}`;
    box.append(link(`https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`, label));
  } else if (m.type === "contacts") {
    for (const c of p.contacts || []) {
      const phones = (c.phones || []).map((x) => x.phone).filter(Boolean).join(", ");
      box.append(h("div", { className: "contact" }, `👤 ${(c.name && c.name.formatted_name) || "contact"}${phones ? ` · ${phones}` : ""}`));
    }
  } else if (m.type === "unsupported") box.append(h("div", { className: "hint" }, "[a message WhatsApp does not support]"));
}

/** The reply buttons (or list rows) of a business's interactive message: pressing one answers
 *  with it, as the WhatsApp app does. */
function waChoices(m) {
  const p = m.payload || {};
  if (waMine(m) || m.type !== "interactive" || !p.action) return null;
  const options = p.type === "button"
    ? (p.action.buttons || []).map((b) => b.reply || {})
    : (p.action.sections || []).flatMap((s) => s.rows || []);
  if (!options.length) return null;
  return h("div", { className: "keyboard" }, h("div", { className: "kb-row" }, ...options.map((o) =>
    button(String(o.title || o.id), { className: "kb-btn", title: o.description || "" },
      () => waAct("Not sent", () => waSend({ button_reply: { id: String(o.id), title: String(o.title || o.id) } }))))));
}

function waStatus(m) {
  const [mark, title] = WA_STATUS[m.status] || ["", ""];
  if (!mark) return null;
  const why = waError(m);
  return h("span", { className: `receipt ${m.status}`, title: why ? `${title}: ${why}` : title }, mark);
}

/** A failed message's reason, as WhatsApp gives it in the status webhook. */
function waError(m) {
  const e = (m.errors || [])[0];
  if (!e) return "";
  const details = e.error_data && e.error_data.details;
  return `${e.code} ${e.title || e.message || ""}${details ? ` — ${details}` : ""}`;
}

function waQuoted(m) {
  const id = m.context && m.context.id;
  const q = id && WA.msgs.find((x) => x.id === id);
  if (!id) return null;
  const text = q ? (q.body || q.caption || `[${q.type}]`) : "a message";
  return h("div", { className: "quote" }, `↩ ${String(text).slice(0, 80)}`);
}

/** Reactions by message id: the latest of each side counts, an empty emoji removes it. */
function waReactions() {
  const by = {};
  for (const m of WA.msgs) {
    if (m.type !== "reaction" || !m.payload) continue;
    const side = waMine(m) ? "customer" : "business";
    (by[m.payload.message_id] ??= {})[side] = m.payload.emoji || "";
  }
  return by;
}

function waMessage(m, reactions) {
  const mine = waMine(m);
  const bubble = h("div", { className: "bubble" });
  const name = mine ? "" : (WA.number && WA.number.name) || "Business";
  if (!mine) bubble.append(h("div", { className: "sender" }, name, m.template && h("span", { className: "tag" }, `template ${m.template.name}`)));
  const quote = waQuoted(m);
  if (quote) bubble.append(quote);
  waMediaBox(bubble, m);
  const p = m.payload || {};
  const text = m.type === "interactive" && mine ? `🔘 ${m.body || ""}` : m.body || m.caption;
  if (text) bubble.append(h("div", { className: "text" }, text));
  if (m.type === "interactive" && !mine && p.footer && p.footer.text) bubble.append(h("div", { className: "hint" }, p.footer.text));
  if (m.status === "failed") bubble.append(h("div", { className: "hint" }, `⚠️ ${waError(m) || "not delivered"}`));
  const choices = waChoices(m);
  if (choices) bubble.append(choices);
  const r = reactions[m.id] || {};
  const shown = [r.customer, r.business].filter(Boolean).join(" ");
  const time = new Date((m.timestamp || 0) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const unread = !mine && (m.status === "sent" || m.status === "delivered");
  const action = (label, title, run) => button(label, { className: "msg-action", ariaLabel: title, title }, run);
  bubble.append(h("div", { className: "meta" },
    shown && h("span", { className: "reactions", title: "Reactions" }, shown),
    action("↩", "Reply to this message", () => waQuote(m)),
    ...(m.status === "failed" ? [] : WA_REACTIONS.map((e) => action(e, `React ${e}`, () => waReact(m, r.customer === e ? "" : e)))),
    unread && action("👁", "Read it (blue ticks)", () => waRead(m)),
    mine && m.read_by_business && h("span", { className: "receipt read", title: "The business marked it read" }, "✓✓"),
    !mine && waStatus(m),
    h("time", {}, time)));
  return h("div", { className: mine ? "msg own" : "msg" }, bubble);
}

function waRender() {
  const log = $("whatsapp-log");
  const stick = atBottom(log);
  const note = (text) => log.replaceChildren(h("p", { className: "empty" }, text));
  $("whatsapp-advance").disabled = !WA.number;
  if (!WA.number) return note("No WhatsApp number is configured (add a `kind: whatsapp` channel).");
  if (!WA.user) return note("Add a WhatsApp customer above to start.");
  const shown = WA.msgs.filter((m) => m.type !== "reaction");
  if (!shown.length) return note(`Write to ${WA.number.name} to open a conversation.`);
  const reactions = waReactions();
  log.replaceChildren(...shown.map((m) => waMessage(m, reactions)));
  if (stick) stickToBottom(log);
}

function waWindowNote() {
  const el = $("whatsapp-window");
  const ahead = Math.round(WA.skew / 3600);
  const clock = ahead ? `WhatsApp's clock (the emulator's) is ${ahead} h ahead of the gateway's. ` : "";
  const names = WA.templates.filter((t) => t.status === "APPROVED").map((t) => t.name);
  const offer = names.length ? `/template ${names[0]} …` : "/template NAME …";
  if (!WA.user || WA.windowOpen) {
    el.dataset.state = "open";
    el.textContent = WA.user && ahead ? `${clock}The customer wrote since, so the 24-hour window is open again.` : "";
    return;
  }
  el.dataset.state = "closed";
  el.textContent = `${clock}The 24-hour window is closed on WhatsApp's side: an operator's free-form reply `
    + "is refused with error 131047 and never appears here — the staff topic shows “⚠️ Not delivered "
    + "to the customer: more than 24 hours since the customer last wrote”. (The gateway checks the window "
    + "by its own, real clock, which +25 h does not move, so here it is WhatsApp that refuses.) "
    + `A template still goes through: ${offer} in the topic. Writing as the customer reopens the window.`;
}

function waHead() {
  const hook = WA.number && WA.hooks[WA.number.phone_number_id];
  const state = hook ? "gateway connected (webhook set)" : "gateway not connected yet";
  const windowState = WA.user ? ` · 24-hour window ${WA.windowOpen ? "open" : "closed"}` : "";
  $("whatsapp-title").textContent = WA.number ? WA.number.name : "No WhatsApp number configured";
  $("whatsapp-sub").textContent = WA.number ? `${WA.number.display || WA.number.phone_number_id} · ${WA.number.account} · ${state}${windowState}` : "";
  fillSelect($("whatsapp-number-select"), WA.numbers, (n) => `${n.name} (${n.account})`, (n) => n.phone_number_id, WA.number, "— none —");
  fillSelect($("whatsapp-customer-select"), WA.users, (u) => `${u.name} · +${u.wa_id}`, (u) => u.wa_id, WA.user, "— none yet —");
  $("whatsapp-customer-select").disabled = !WA.users.length;
  waWindowNote();
}

// ---------------------------------------------------------------- actions

async function waLoad() {
  WA.msgs = []; WA.windowOpen = false;
  if (WA.number && WA.user) {
    const who = waWho();
    const chat = await waApi(`/conversations/${encodeURIComponent(who.phone_number_id)}/${encodeURIComponent(who.wa_id)}`);
    [WA.msgs, WA.windowOpen] = [chat.messages || [], !!chat.window_open];
  }
  waHead();
  waRender();
  stickToBottom($("whatsapp-log"));
}

function waSelect() {
  store(WA_LS.number, WA.number && WA.number.phone_number_id);
  store(WA_LS.user, WA.user && WA.user.wa_id);
  waQuote(null);
  waLoad().catch((err) => toast(`Could not load the WhatsApp chat — ${err.message}`));
}

function waUpsert(m) {
  const i = WA.msgs.findIndex((x) => x.id === m.id);
  if (i >= 0) WA.msgs[i] = { ...WA.msgs[i], ...m }; else WA.msgs.push(m);
}

async function waSend(extra) {
  if (!WA.number || !WA.user) throw new Error("Pick a number and a customer first");
  const body = { ...waWho(), ...extra };
  if (WA.replyTo && !extra.reaction && !extra.button_reply) body.reply_to = WA.replyTo.id;
  await waApi("/send", body); // the message itself arrives through the event feed
  waQuote(null);
  WA.windowOpen = true; // the customer wrote: the window is open (again)
  waHead();
}

function waSubmit(text, file) {
  if (!file) return waSend({ text });
  const mime = file.mime_type;
  const kind = /^image\/(jpeg|png)$/.test(mime) ? "image" : /^audio\/ogg/.test(mime) ? "voice"
    : /^audio\//.test(mime) ? "audio" : /^video\/(mp4|3gpp)$/.test(mime) ? "video" : "document";
  if (text && (kind === "voice" || kind === "audio")) throw new Error("A voice or audio message goes without text in WhatsApp");
  return waSend({ kind, caption: text || undefined, file: { name: file.name, mime_type: mime, content_b64: file.content_b64 } });
}

function waQuote(m) {
  WA.replyTo = m;
  if (WA.composer) WA.composer.setContext(m ? `Replying to: ${(m.body || m.caption || `[${m.type}]`).slice(0, 60)}` : null);
  if (m && WA.composer) WA.composer.ta.focus();
}

const waReact = (m, emoji) => waAct("Could not react", () => waSend({ reaction: { message_id: m.id, emoji } }));

/** The customer opens the chat up to ``m``: it and every earlier message turn read. */
const waRead = (m) => waAct("Could not mark it read", () => waApi("/read", { ...waWho(), message_id: m.id }));

async function waAddUser(name, phone) {
  const user = await waApi("/users", phone ? { name, wa_id: phone } : { name });
  WA.users.push(user);
  WA.user = user;
  waSelect();
}

async function waAdvance() {
  const r = await waApi("/advance", { seconds: WA_HOURS * 3600 });
  WA.skew = r.now - Date.now() / 1000;
  await waLoad();
  toast(`WhatsApp's clock moved ${WA_HOURS} h forward: the 24-hour window is closed (see the note above the chat).`);
}

// ---------------------------------------------------------------- live updates

function waApply(ev) {
  if (!WA.number || !WA.user || ev.phone_number_id !== WA.number.phone_number_id || ev.wa_id !== WA.user.wa_id) return;
  if ((ev.type === "message" || ev.type === "status") && ev.message) {
    waUpsert(ev.message);
    if (ev.type === "message" && waMine(ev.message)) WA.windowOpen = true;
  } else if (ev.type === "read_mark" && ev.mark) {
    for (const m of WA.msgs) { // the business read this message and every earlier one
      if (waMine(m)) m.read_by_business = true;
      if (m.id === ev.mark.message_id) break;
    }
  }
  waHead();
  waRender();
}

async function waResync() {
  const st = await waApi("/state");
  for (const n of st.numbers || []) WA.hooks[n.id] = n.webhook;
  for (const n of WA.numbers) n.display = (st.numbers || []).filter((x) => x.id === n.phone_number_id).map((x) => `+${x.display_phone_number}`)[0];
  WA.users = st.users || [];
  WA.templates = st.templates || [];
  WA.skew = typeof st.now === "number" ? st.now - Date.now() / 1000 : 0;
  if (Math.abs(WA.skew) < 60) WA.skew = 0;
  WA.user = WA.users.find((u) => u.wa_id === (WA.user ? WA.user.wa_id : recall(WA_LS.user, null))) || WA.users[0] || null;
  await waLoad();
  return st.cursor || 0;
}

// ---------------------------------------------------------------- start-up

async function waBoot() {
  const cfg = await loadConfig();
  if (!cfg.whatsapp || !cfg.whatsapp.numbers.length) return; // no WhatsApp channel: no WhatsApp tab
  WA.path = cfg.whatsapp.path;
  WA.numbers = cfg.whatsapp.numbers.map((n) => ({ ...n }));
  WA.number = WA.numbers.find((n) => n.phone_number_id === recall(WA_LS.number, null)) || WA.numbers[0];
  addTab("whatsapp");
  WA.composer = makeComposer($("whatsapp-composer"), waSubmit, () => waQuote(null));
  $("whatsapp-number-select").addEventListener("change", (e) => { WA.number = WA.numbers.find((n) => n.phone_number_id === e.target.value) || null; waSelect(); });
  $("whatsapp-customer-select").addEventListener("change", (e) => { WA.user = WA.users.find((u) => u.wa_id === e.target.value) || null; waSelect(); });
  $("whatsapp-customer-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("whatsapp-customer-name").value.trim().replace(/\s+/g, " ");
    const phone = $("whatsapp-customer-phone").value.replace(/[^\d]/g, "");
    if (!name) return;
    try { await waAddUser(name, phone); $("whatsapp-customer-name").value = ""; $("whatsapp-customer-phone").value = ""; WA.composer.ta.focus(); }
    catch (err) { toast(`Could not create the customer — ${err.message}`); }
  });
  $("whatsapp-advance").addEventListener("click", () => waAct("Could not move the clock", waAdvance));
  const quick = (extra) => waAct("Not sent", () => waSend(extra));
  $("whatsapp-share-location").addEventListener("click", () => quick({ location: { latitude: 55.7558 + Math.random() / 200, longitude: 37.6173 + Math.random() / 200 } }));
  // The customer's own contact card, with the phone number WhatsApp knows them by.
  $("whatsapp-share-contact").addEventListener("click", () => quick({ contacts: [{ name: WA.user ? WA.user.name : "Customer", phone: WA.user ? `+${WA.user.wa_id}` : "+79160000000" }] }));
  $("whatsapp-voice").addEventListener("click", () => quick({ kind: "voice", file: { name: "voice.ogg", mime_type: "audio/ogg", content_b64: WA_VOICE } }));
  $("whatsapp-read-all").addEventListener("click", () => {
    const unread = WA.msgs.filter((m) => !waMine(m) && (m.status === "sent" || m.status === "delivered"));
    if (unread.length) waRead(unread[unread.length - 1]); else toast("Nothing unread from the business.");
  });
  waHead();
  waRender();
  followFeed("WhatsApp", waApi, waResync, waApply);
}

document.addEventListener("DOMContentLoaded", waBoot);
