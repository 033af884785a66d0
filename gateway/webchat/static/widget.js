/* The gateway's website chat widget. One tag on any page:
 *
 *   <script src="https://gateway.example/webchat/widget.js" data-account="site" defer></script>
 *
 * Optional: data-user-id and data-user-hash (HMAC-SHA256 of the user id with the
 * account's identity_secret, computed by the site's server) for logged-in users.
 *
 * Plain JavaScript, no dependencies. The widget lives in a shadow root, so the page's
 * styles and its own do not mix; every text is inserted as text, never as HTML.
 * Messages get a client id and stay "sending" until the gateway acknowledges them;
 * after a reconnect the unacknowledged ones are sent again under the same id (the
 * gateway stores each id once). Events come over a WebSocket, or by long polling
 * where a socket cannot be opened, from the last one seen: nothing lost, nothing twice.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var account = script.getAttribute("data-account") || "site";
  var base = new URL(script.src, location.href);
  var root = base.origin + "/webchat/" + encodeURIComponent(account);
  var storeKey = "gw-webchat:" + base.origin + ":" + account;
  var userId = script.getAttribute("data-user-id");
  var userHash = script.getAttribute("data-user-hash");

  var state = {
    token: null,
    config: null,
    since: null,
    pending: {}, // cid -> {frame, node}
    order: [], // cids not yet acknowledged, in sending order
    nodes: {}, // message id -> bubble
    socket: null,
    socketFailures: 0,
    polling: false,
    open: false,
    lastSeen: null,
    loaded: false, // the history has been shown: what comes now is new
    unread: 0,
  };

  function load() {
    try {
      return JSON.parse(localStorage.getItem(storeKey) || "{}");
    } catch (e) {
      return {};
    }
  }
  function save(data) {
    try {
      localStorage.setItem(storeKey, JSON.stringify(Object.assign(load(), data)));
    } catch (e) {
      /* private mode: the visitor is new on every page */
    }
  }
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function api(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    return fetch(root + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
        return data;
      });
    });
  }

  // --- UI ------------------------------------------------------------------------------

  var host = el("div");
  host.setAttribute("data-gateway-webchat", account);
  var shadow = host.attachShadow({ mode: "open" });
  var style = el("link");
  style.rel = "stylesheet";
  style.href = base.origin + "/webchat/widget.css";
  shadow.appendChild(style);
  var button = el("button", "gw-button", "💬");
  var badge = el("span", "gw-badge gw-hidden");
  button.appendChild(badge);
  button.setAttribute("aria-label", "Chat");
  var panel = el("section", "gw-panel gw-hidden");
  panel.setAttribute("role", "dialog");
  var header = el("header", "gw-header");
  var title = el("span", "gw-title", "Chat");
  var close = el("button", "gw-close", "×");
  close.setAttribute("aria-label", "Close");
  header.appendChild(title);
  header.appendChild(close);
  var notice = el("div", "gw-notice gw-hidden");
  var list = el("ol", "gw-messages");
  list.setAttribute("role", "log");
  list.setAttribute("aria-live", "polite");
  var form = el("form", "gw-form gw-hidden");
  var composer = el("form", "gw-composer");
  var input = el("textarea", "gw-input");
  input.rows = 1;
  input.placeholder = "Message…";
  input.maxLength = 4096;
  var attach = el("button", "gw-attach", "📎");
  attach.type = "button";
  attach.setAttribute("aria-label", "Attach a file");
  var fileInput = el("input");
  fileInput.type = "file";
  fileInput.className = "gw-hidden";
  var send = el("button", "gw-send", "➤");
  send.type = "submit";
  send.setAttribute("aria-label", "Send");
  composer.appendChild(attach);
  composer.appendChild(fileInput);
  composer.appendChild(input);
  composer.appendChild(send);
  panel.appendChild(header);
  panel.appendChild(notice);
  panel.appendChild(list);
  panel.appendChild(form);
  panel.appendChild(composer);
  shadow.appendChild(button);
  shadow.appendChild(panel);

  function show(open) {
    state.open = open;
    panel.classList.toggle("gw-hidden", !open);
    button.classList.toggle("gw-hidden", open);
    save({ open: open });
    if (open) {
      state.unread = 0;
      badge.classList.add("gw-hidden");
      input.focus();
      markSeen();
    }
  }
  button.addEventListener("click", function () {
    show(true);
  });
  close.addEventListener("click", function () {
    show(false);
  });
  function say(text) {
    notice.textContent = text || "";
    notice.classList.toggle("gw-hidden", !text);
  }
  function scrollDown() {
    list.scrollTop = list.scrollHeight;
  }

  function bubble(event) {
    var mine = event.dir === "in";
    var item = el("li", "gw-message " + (mine ? "gw-mine" : "gw-theirs"));
    if (!mine && state.config && state.config.avatar) {
      var avatar = el("img", "gw-avatar");
      avatar.src = state.config.avatar;
      avatar.alt = "";
      item.appendChild(avatar);
    }
    if (!mine && event.author) item.appendChild(el("div", "gw-author", event.author));
    var body = el("div", "gw-text", event.text || "");
    item.appendChild(body);
    if (event.file) item.appendChild(fileNode(event.file));
    var meta = el("div", "gw-meta", event.at ? time(event.at) : "");
    if (mine) meta.appendChild(el("span", "gw-status", event.id ? "✓" : "…"));
    item.appendChild(meta);
    return item;
  }
  function fileNode(file) {
    var url = root + "/files/" + encodeURIComponent(file.id);
    var link = el("a", "gw-file");
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    if (/^image\//.test(file.mime)) {
      var image = el("img");
      image.src = url;
      image.alt = file.name || "image";
      link.appendChild(image);
    } else {
      link.textContent = "📄 " + (file.name || "file");
    }
    return link;
  }
  function time(ms) {
    var date = new Date(ms);
    return ("0" + date.getHours()).slice(-2) + ":" + ("0" + date.getMinutes()).slice(-2);
  }
  function status(node, text) {
    var mark = node && node.querySelector(".gw-status");
    if (mark) mark.textContent = text;
  }

  // --- events --------------------------------------------------------------------------

  function apply(events) {
    events.forEach(function (event) {
      state.since = event.id;
      if (event.kind === "msg") {
        var waiting = event.cid && state.pending[event.cid];
        if (waiting) {
          acked(event.cid, event.id);
        } else if (!state.nodes[event.id]) {
          var node = bubble(event);
          state.nodes[event.id] = node;
          list.appendChild(node);
          if (event.dir === "out" && state.loaded && !state.open) {
            state.unread += 1; // a reply while the chat is closed: a badge on the button
            badge.textContent = String(state.unread);
            badge.classList.remove("gw-hidden");
          }
        }
      } else if (event.kind === "edit" && state.nodes[event.ref]) {
        state.nodes[event.ref].querySelector(".gw-text").textContent = event.text || "";
        state.nodes[event.ref].classList.add("gw-edited");
      } else if (event.kind === "del" && state.nodes[event.ref]) {
        var gone = state.nodes[event.ref];
        gone.querySelector(".gw-text").textContent = "Message deleted";
        gone.classList.add("gw-deleted");
        var file = gone.querySelector(".gw-file");
        if (file) file.remove();
      } else if (event.kind === "read") {
        Object.keys(state.nodes).forEach(function (id) {
          if (!later(id, event.ref)) status(state.nodes[id], "✓✓");
        });
      }
    });
    state.loaded = true;
    if (events.length) {
      scrollDown();
      markSeen();
    }
  }
  function later(one, other) {
    var a = one.split("-").map(Number);
    var b = other.split("-").map(Number);
    return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
  }
  function markSeen() {
    if (!state.open) return;
    var theirs = list.querySelectorAll(".gw-theirs");
    if (!theirs.length) return;
    var id = null;
    Object.keys(state.nodes).forEach(function (key) {
      if (state.nodes[key].classList.contains("gw-theirs") && (!id || later(key, id))) id = key;
    });
    if (id && id !== state.lastSeen) {
      state.lastSeen = id;
      transmit({ type: "seen", id: id });
    }
  }

  // --- sending ---------------------------------------------------------------------------

  function queue(text, file) {
    var cid = newId();
    var frame = { type: "message", cid: cid, text: text };
    if (file) frame.file = { id: file.id };
    var node = bubble({ dir: "in", text: text, file: file, at: Date.now() });
    list.appendChild(node);
    scrollDown();
    state.pending[cid] = { frame: frame, node: node };
    state.order.push(cid);
    transmit(frame);
  }
  function acked(cid, id) {
    var waiting = state.pending[cid];
    if (!waiting) return;
    delete state.pending[cid];
    state.order = state.order.filter(function (c) {
      return c !== cid;
    });
    state.nodes[id] = waiting.node;
    status(waiting.node, "✓");
  }
  function failed(answer) {
    var waiting = answer.cid && state.pending[answer.cid];
    if (answer.status === 503 || answer.status === 429) {
      say(answer.error);
      return; // sent again on the next reconnect or by the timer below
    }
    if (waiting) {
      delete state.pending[answer.cid];
      state.order = state.order.filter(function (c) {
        return c !== answer.cid;
      });
      waiting.node.classList.add("gw-failed");
      status(waiting.node, "⚠ " + answer.error);
    } else {
      say(answer.error);
    }
  }
  function transmit(frame) {
    var socket = state.socket;
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(frame));
      return;
    }
    if (!state.polling) return; // the socket will resend once open
    api("POST", "/messages", frame).then(
      function (answer) {
        if (answer.type === "ack") acked(answer.cid, answer.id);
      },
      function (error) {
        say(error.message);
      }
    );
  }
  function resend() {
    state.order.forEach(function (cid) {
      transmit(state.pending[cid].frame);
    });
  }
  setInterval(function () {
    if (state.order.length) resend();
  }, 15000);

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    queue(text, null);
  });
  var typedAt = 0;
  input.addEventListener("input", function () {
    // Operators see "typing…" in the topic; every 4 s at most, over the socket only.
    var socket = state.socket;
    if (Date.now() - typedAt < 4000 || !socket || socket.readyState !== 1) return;
    typedAt = Date.now();
    socket.send(JSON.stringify({ type: "typing" }));
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      composer.requestSubmit ? composer.requestSubmit() : composer.dispatchEvent(new Event("submit"));
    }
  });
  attach.addEventListener("click", function () {
    fileInput.click();
  });
  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    var limit = (state.config && state.config.max_file_mb) || 10;
    if (file.size > limit * 1024 * 1024) {
      say("Files up to " + limit + " MB");
      return;
    }
    var body = new FormData();
    body.append("file", file, file.name);
    fetch(root + "/files", {
      method: "POST",
      headers: { Authorization: "Bearer " + state.token },
      body: body,
    })
      .then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) throw new Error(data.error || "upload failed");
          return data;
        });
      })
      .then(
        function (stored) {
          say("");
          queue(input.value.trim(), stored);
          input.value = "";
        },
        function (error) {
          say(error.message);
        }
      );
  });

  // --- connection ----------------------------------------------------------------------

  function connect() {
    if (!window.WebSocket || state.socketFailures >= 3) {
      poll();
      return;
    }
    var url = root.replace(/^http/, "ws") + "/ws";
    var socket = new WebSocket(url);
    var opened = false;
    state.socket = socket;
    socket.onopen = function () {
      opened = true;
      state.socketFailures = 0;
      socket.send(JSON.stringify({ type: "hello", token: state.token, since: state.since }));
      say("");
      resend();
    };
    socket.onmessage = function (message) {
      var data = JSON.parse(message.data);
      if (data.type === "events") apply(data.events);
      else if (data.type === "ack") acked(data.cid, data.id);
      else if (data.type === "error") failed(data);
      // "typing" and "seen" answers need nothing
    };
    socket.onclose = function (event) {
      state.socket = null;
      if (event.code === 4401) {
        // The token is no longer valid (the chat's secret changed): a new session.
        api("POST", "/session", { token: state.token }).then(function (session) {
          state.token = session.token;
          save({ token: session.token });
          setTimeout(connect, 1000);
        }, function (error) {
          say(error.message);
          setTimeout(connect, 15000);
        });
        return;
      }
      if (!opened) state.socketFailures += 1;
      var delay = Math.min(15000, 500 * Math.pow(2, state.socketFailures));
      if (opened) say("Reconnecting…");
      setTimeout(connect, delay);
    };
  }
  function poll() {
    state.polling = true;
    resend();
    var query = state.since ? "?since=" + encodeURIComponent(state.since) : "";
    api("GET", "/events" + query).then(
      function (answer) {
        say("");
        apply(answer.events);
        setTimeout(poll, 0);
      },
      function () {
        say("Reconnecting…");
        setTimeout(poll, 3000);
      }
    );
  }

  // --- start -----------------------------------------------------------------------------

  function startChat() {
    form.classList.add("gw-hidden");
    composer.classList.remove("gw-hidden");
    connect();
  }
  function askForm(config, profile, offline) {
    var fields = config.form.fields.filter(function (name) {
      return !profile[name];
    });
    // Offline, every field asked for is needed: the answer must reach them somehow.
    var required = offline ? config.form.fields : config.form.required;
    var missing = required.filter(function (name) {
      return !profile[name];
    });
    if (!fields.length || !missing.length) return false;
    while (form.firstChild) form.removeChild(form.firstChild);
    if (offline) form.appendChild(el("p", "gw-offline", config.offline));
    var labels = { name: "Your name", phone: "Phone", email: "E-mail" };
    fields.forEach(function (name) {
      var label = el("label", "gw-field", labels[name]);
      var field = el("input");
      field.name = name;
      field.type = name === "email" ? "email" : name === "phone" ? "tel" : "text";
      field.required = missing.indexOf(name) >= 0;
      field.maxLength = name === "name" ? 64 : 190;
      label.appendChild(field);
      form.appendChild(label);
    });
    var go = el("button", "gw-start", "Start chat");
    go.type = "submit";
    form.appendChild(go);
    form.classList.remove("gw-hidden");
    composer.classList.add("gw-hidden");
    return true;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var details = {};
    Array.prototype.forEach.call(form.querySelectorAll("input"), function (field) {
      details[field.name] = field.value;
    });
    api("POST", "/session", { token: state.token, form: details }).then(
      function (session) {
        state.token = session.token;
        save({ token: session.token });
        say("");
        startChat();
      },
      function (error) {
        say(error.message);
      }
    );
  });

  function start() {
    document.body.appendChild(host);
    var stored = load();
    state.token = stored.token || null;
    api("GET", "/config")
      .then(function (config) {
        state.config = config;
        title.textContent = config.title;
        host.style.setProperty("--gw-color", config.color);
        list.appendChild(el("li", "gw-intro", config.online ? config.intro : config.offline));
        var identity = userId ? { user_id: userId, user_hash: userHash } : {};
        return api("POST", "/session", Object.assign({ token: state.token }, identity));
      })
      .then(function (session) {
        state.token = session.token;
        save({ token: session.token });
        if (!askForm(state.config, session.profile || {}, !state.config.online)) startChat();
        if (stored.open) show(true);
      })
      .catch(function (error) {
        say(error.message);
        show(false);
      });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
