// The web phone's page: it shows what the phones hosted by this server
// see and sends what the customer does through the server's JSON API
// (package webphone). It holds no keys; everything here is presentation.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
// field is a form's control called name (form.name would be the form's own
// name attribute).
const field = (form, name) => form.elements.namedItem(name).value;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || res.status + " " + res.statusText);
  return data;
}

function showError(err) {
  const p = $("#error");
  if (!err) { p.hidden = true; p.textContent = ""; return; }
  p.textContent = err.message || String(err);
  p.hidden = false;
}

// ---- routing ----

let view = null; // what is shown: {name, number, chat, stop()}

function navigate(path) {
  if (location.pathname !== path) history.pushState(null, "", path);
  route();
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[data-nav]");
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);

function route() {
  if (view && view.stop) view.stop();
  view = null;
  showError(null);
  for (const s of document.querySelectorAll("section")) s.hidden = true;
  const m = location.pathname.match(/^\/phones\/(\d+)(?:\/chats\/(\d+))?\/?$/);
  if (!m) return showPhones();
  if (!m[2]) return showChats(m[1]);
  return showChat(m[1], m[2]);
}

function setTop(title, back) {
  $("#title").textContent = title;
  const b = $("#back");
  b.hidden = !back;
  if (back) { b.setAttribute("href", back); b.setAttribute("data-nav", ""); }
  $("#state").textContent = "";
}

// live opens the phone's event stream; onRecord gets each new record and
// onOpen runs on every (re)connection, when the caller reloads what it
// shows so that nothing between two connections is missed.
function live(number, onRecord, onOpen) {
  const es = new EventSource("/api/phones/" + number + "/events");
  es.addEventListener("record", (ev) => onRecord(JSON.parse(ev.data)));
  es.onopen = () => { $("#state").textContent = ""; onOpen(); };
  es.onerror = () => { $("#state").textContent = "reconnecting…"; };
  return () => es.close();
}

// ---- phones ----

async function showPhones() {
  setTop("Web phone", null);
  $("#view-phones").hidden = false;
  view = { name: "phones" };
  try {
    const { phones } = await api("GET", "/api/phones");
    const ul = $("#phones");
    ul.replaceChildren(...phones.map((p) => el("li", { class: "phone", "data-number": p.number },
      el("a", { href: "/phones/" + p.number, "data-nav": true },
        el("span", { class: "phone-name", text: p.name || p.number }),
        el("span", { class: "phone-number", text: "+" + p.number })))));
    if (!phones.length) ul.append(el("li", { class: "empty", text: "No phones yet: register one below." }));
  } catch (err) { showError(err); }
}

$("#new-phone").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target, btn = $("button", f);
  btn.disabled = true;
  showError(null);
  try {
    const p = await api("POST", "/api/phones", { number: field(f, "number").replace(/^\+/, ""), name: field(f, "name") });
    f.reset();
    navigate("/phones/" + p.number);
  } catch (err) { showError(err); } finally { btn.disabled = false; }
});

// ---- chat list ----

const profiles = new Map(); // "<phone> <chat>" → profile

function fileURL(number, file, download) {
  let u = "/api/phones/" + number + "/files/" + file;
  if (download) u += "?download=" + encodeURIComponent(download);
  return u;
}

// fetchProfile asks the network for a business's profile now (POST: the
// server keeps it and adds a system line when it changed).
async function fetchProfile(number, chat) {
  try {
    const pr = await api("POST", "/api/phones/" + number + "/chats/" + chat + "/profile", {});
    profiles.set(number + " " + chat, pr);
    return pr;
  } catch (err) {
    return profiles.get(number + " " + chat) || { number: chat };
  }
}

function summary(r) {
  if (!r) return "";
  const prefix = r.dir === "out" ? "You: " : "";
  if (r.text) return prefix + r.text;
  const o = r.object || {};
  switch (r.type) {
    case "template": return prefix + (o.body || "Template " + (o.name || ""));
    case "interactive": return prefix + ((o.body && o.body.text) || "Interactive message");
    case "location": return prefix + "📍 " + (o.name || "Location");
    case "contacts": return prefix + "👤 Contact";
    default: return prefix + (r.caption || r.filename || r.type);
  }
}

async function showChats(number) {
  setTop("+" + number, "/");
  $("#view-chats").hidden = false;
  let stopped = false, timer = null;
  const asked = new Set(); // chats whose profile this view asked the network for
  const render = async () => {
    try {
      const { chats } = await api("GET", "/api/phones/" + number + "/chats");
      if (stopped) return;
      const ul = $("#chats");
      ul.replaceChildren(...chats.map((c) => chatItem(number, c)));
      if (!chats.length) ul.append(el("li", { class: "empty", text: "No chats yet. A business that writes to +" + number + " appears here." }));
      // Once per view, each business's profile as the network has it now;
      // the list is drawn again from what the server then keeps.
      const fresh = chats.filter((c) => !asked.has(c.number));
      for (const c of fresh) asked.add(c.number);
      if (fresh.length) {
        Promise.all(fresh.map((c) => fetchProfile(number, c.number))).then(() => { if (!stopped) render(); });
      }
    } catch (err) { showError(err); }
  };
  const stop = live(number, () => { clearTimeout(timer); timer = setTimeout(render, 100); }, render);
  view = { name: "chats", number, stop: () => { stopped = true; clearTimeout(timer); stop(); } };
}

function chatItem(number, c) {
  const pr = c.profile || {};
  return el("li", { class: "chat", "data-number": c.number },
    el("a", { href: "/phones/" + number + "/chats/" + c.number, "data-nav": true },
      pr.photo ? el("img", { class: "chat-photo", src: fileURL(number, pr.photo), alt: "" }) : el("span", { class: "chat-photo none" }),
      el("span", { class: "chat-text" },
        el("span", { class: "chat-name", text: pr.name || "+" + c.number }),
        el("span", { class: "chat-about", text: pr.about || "" }),
        el("span", { class: "chat-last", text: summary(c.last) })),
      c.unread ? el("span", { class: "unread", text: String(c.unread), "aria-label": c.unread + " unread" }) : null));
}

$("#new-chat").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const n = field(ev.target, "number").replace(/^\+/, "");
  if (view && view.number) navigate("/phones/" + view.number + "/chats/" + n);
});

// ---- a conversation ----

const statusRank = { pending: 0, sent: 1, delivered: 2, read: 3, played: 4 };
const tickText = { pending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", played: "✓✓", failed: "!" };

function timeOf(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function sizeOf(n) {
  if (!n) return "";
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KB";
  return (n / (1 << 20)).toFixed(1) + " MB";
}

// Chat folds records into messages, in the order they came.
class Chat {
  constructor() { this.bySeq = new Map(); }
  add(r) { this.bySeq.set(r.seq, r); }
  fold() {
    const items = [], msgs = new Map(), statuses = [];
    for (const r of [...this.bySeq.values()].sort((a, b) => a.seq - b.seq)) {
      if (r.kind === "message" && r.type === "reaction") {
        const o = r.object || {};
        statuses.push({ reaction: true, target: o.message_id, dir: r.dir, emoji: o.emoji || "" });
      } else if (r.kind === "message") {
        const m = { ...r, reactions: {}, status: r.status || "" };
        msgs.set(r.id, m);
        items.push(m);
      } else if (r.kind === "status") {
        statuses.push(r);
      } else if (r.kind === "system") {
        items.push(r);
      }
    }
    for (const s of statuses) {
      const m = msgs.get(s.reaction ? s.target : s.id);
      if (!m) continue;
      if (s.reaction) {
        if (s.emoji) m.reactions[s.dir] = s.emoji; else delete m.reactions[s.dir];
      } else if (s.status === "failed") {
        m.status = "failed"; m.error = s.error;
      } else if (m.status !== "failed" && (statusRank[s.status] ?? -1) > (statusRank[m.status] ?? -1)) {
        m.status = s.status;
      }
    }
    return { items, msgs };
  }
}

async function showChat(number, chat) {
  setTop("+" + chat, "/phones/" + number);
  $("#view-chat").hidden = false;
  const box = $("#messages");
  box.replaceChildren();
  const ctx = { number, chat, data: new Chat(), replyTo: null, stopped: false, rendered: null, nodes: new Map() };
  resetComposer(ctx);
  renderHeader(ctx, profiles.get(number + " " + chat) || { number: chat });
  fetchProfile(number, chat).then((pr) => { if (!ctx.stopped) renderHeader(ctx, pr); });
  let timer = null;
  const rerender = () => { clearTimeout(timer); timer = setTimeout(() => renderChat(ctx), 30); };
  const load = async () => {
    try {
      const { records } = await api("GET", "/api/phones/" + number + "/chats/" + chat + "/messages");
      if (ctx.stopped) return;
      for (const r of records) ctx.data.add(r);
      renderChat(ctx);
      markRead(ctx);
    } catch (err) { showError(err); }
  };
  const stop = live(number, (r) => {
    if (r.chat !== chat) return;
    ctx.data.add(r);
    if (r.kind === "read") return; // nothing the customer sees changes
    rerender();
    if (r.kind === "message" && r.dir === "in") markRead(ctx);
    if (r.kind === "system") fetchProfile(number, chat).then((pr) => { if (!ctx.stopped) renderHeader(ctx, pr); });
  }, load);
  view = { name: "chat", number, chat, ctx, stop: () => { ctx.stopped = true; clearTimeout(timer); stop(); } };
}

// markRead sends read receipts for what the open chat shows (opening a
// chat reads it, as on a phone).
function markRead(ctx) {
  if (document.visibilityState === "hidden" || ctx.stopped) return;
  api("POST", "/api/phones/" + ctx.number + "/chats/" + ctx.chat + "/read", {}).catch(showError);
}
document.addEventListener("visibilitychange", () => {
  if (view && view.name === "chat") markRead(view.ctx);
});

function renderHeader(ctx, pr) {
  const h = $("#chat-header");
  const img = $("img.photo", h);
  if (pr.photo) { img.src = fileURL(ctx.number, pr.photo); img.hidden = false; } else { img.removeAttribute("src"); img.hidden = true; }
  $(".name", h).textContent = pr.name || "+" + ctx.chat;
  $(".about", h).textContent = pr.about || "";
  $("#title").textContent = pr.name || "+" + ctx.chat;
  const det = $("#business"), dl = $("dl", det);
  const b = pr.business || null;
  dl.replaceChildren();
  if (b) {
    const rows = [["Description", b.description], ["Address", b.address], ["Email", b.email], ["Category", b.vertical],
      ["Websites", (b.websites || []).join(" ")]];
    for (const [k, v] of rows) if (v) dl.append(el("dt", { text: k }), el("dd", { text: v }));
  }
  det.hidden = !dl.children.length;
}

// renderChat brings the message list up to date: a bubble is made again
// only when what it shows changed (so a playing video or an open list
// stays as it is), and put in place only when it is not there already.
function renderChat(ctx) {
  const box = $("#messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const { items, msgs } = ctx.data.fold();
  const keep = new Set();
  let prev = null;
  for (const it of items) {
    const key = it.kind === "system" ? "s" + it.seq : "m" + it.id;
    const sig = it.kind === "system" ? it.text
      : JSON.stringify([it.status, it.error || "", it.reactions, !!(it.context && msgs.get(it.context.id))]);
    keep.add(key);
    let entry = ctx.nodes.get(key);
    if (!entry || entry.sig !== sig) {
      const node = it.kind === "system"
        ? el("div", { class: "system", text: it.text, "data-seq": String(it.seq) })
        : bubble(ctx, it, msgs);
      if (entry) entry.node.replaceWith(node);
      entry = { sig, node };
      ctx.nodes.set(key, entry);
    }
    const want = prev ? prev.nextSibling : box.firstChild;
    if (entry.node !== want) box.insertBefore(entry.node, want);
    prev = entry.node;
  }
  for (const [key, e] of ctx.nodes) {
    if (!keep.has(key)) { e.node.remove(); ctx.nodes.delete(key); }
  }
  if (atBottom || !ctx.rendered) box.scrollTop = box.scrollHeight;
  ctx.rendered = true;
}

function bubble(ctx, m, msgs) {
  const b = el("div", { class: "bubble " + m.dir, "data-id": m.id, "data-type": m.type, "data-dir": m.dir });
  if (m.context && m.context.id) {
    const q = msgs.get(m.context.id);
    b.append(el("div", { class: "quote", "data-quote-id": m.context.id },
      el("span", { class: "quote-who", text: q ? (q.dir === "out" ? "You" : q.name || "+" + ctx.chat) : "" }),
      el("span", { class: "quote-text", text: q ? summary({ ...q, dir: "in" }) : "Message not found" })));
  }
  b.append(content(ctx, m));
  const meta = el("div", { class: "meta" }, el("time", { class: "time", datetime: new Date(m.at).toISOString(), text: timeOf(m.at) }));
  if (m.dir === "out") {
    meta.append(el("span", { class: "ticks " + m.status, "data-status": m.status, title: m.error || m.status, text: tickText[m.status] || "" }));
  }
  b.append(meta);
  const rs = Object.entries(m.reactions);
  if (rs.length) {
    b.append(el("div", { class: "reactions" }, rs.map(([dir, e]) => el("span", { class: "reaction", "data-from": dir, text: e }))));
  }
  b.append(el("div", { class: "actions" },
    el("button", { type: "button", class: "act-reply", "aria-label": "Reply", text: "↩", onclick: () => startReply(ctx, m) }),
    el("button", { type: "button", class: "act-react", "aria-label": "React", text: "☺", onclick: () => pickEmoji(ctx, m) })));
  return b;
}

function mediaEl(ctx, type, file, mime, name, size, caption) {
  if (!file) return el("div", { class: "media-missing", text: "[" + type + "]" });
  const src = fileURL(ctx.number, file);
  switch (type) {
    case "image": case "sticker":
      return el("img", { class: "media " + type, src, alt: caption || type });
    case "audio": case "voice":
      return el("audio", { class: "media", controls: true, src, preload: "metadata" });
    case "video":
      return el("video", { class: "media", controls: true, src, preload: "metadata" });
    default:
      return el("div", { class: "document" },
        el("span", { class: "doc-icon", text: "📄" }),
        el("span", { class: "doc-name", text: name || file }),
        el("span", { class: "doc-size", text: sizeOf(size) }),
        el("a", { class: "doc-download", href: fileURL(ctx.number, file, name || file), download: name || file, text: "Download" }));
  }
}

function headerEl(ctx, m, h) {
  if (!h) return null;
  if (h.type === "text") return el("div", { class: "hdr-text", text: h.text });
  if (h.type === "location") return locationEl(h.location || {});
  return mediaEl(ctx, h.type, m.file, m.mime_type, m.filename || (h.media && h.media.filename), m.size, "");
}

function locationEl(o) {
  return el("div", { class: "location" },
    el("span", { class: "loc-icon", text: "📍" }),
    o.name ? el("div", { class: "loc-name", text: o.name }) : null,
    o.address ? el("div", { class: "loc-address", text: o.address }) : null,
    el("div", { class: "coords", text: Number(o.latitude).toFixed(6) + ", " + Number(o.longitude).toFixed(6) }));
}

function content(ctx, m) {
  const o = m.object || {};
  const c = el("div", { class: "content" });
  switch (m.type) {
    case "text": case "reply":
      c.append(el("div", { class: "text", text: m.text }));
      break;
    case "image": case "sticker": case "audio": case "voice": case "video": case "document":
      c.append(mediaEl(ctx, m.type, m.file, m.mime_type, m.filename, m.size, m.caption));
      if (m.caption) c.append(el("div", { class: "caption", text: m.caption }));
      break;
    case "location":
      c.append(locationEl(o));
      break;
    case "contacts":
      for (const k of Array.isArray(o) ? o : []) {
        const name = (k.name && (k.name.formatted_name || [k.name.first_name, k.name.last_name].filter(Boolean).join(" "))) || "Contact";
        c.append(el("div", { class: "contact-card" },
          el("div", { class: "contact-name", text: "👤 " + name }),
          (k.phones || []).map((p) => el("div", { class: "contact-phone", text: p.phone + (p.type ? " (" + p.type + ")" : "") })),
          (k.emails || []).map((e) => el("div", { class: "contact-email", text: e.email })),
          k.org && k.org.company ? el("div", { class: "contact-org", text: k.org.company }) : null));
      }
      break;
    case "template": {
      const t = el("div", { class: "template", "data-name": o.name || "" });
      const h = headerEl(ctx, m, o.header);
      if (h) t.append(el("div", { class: "tpl-header" }, h));
      t.append(el("div", { class: "tpl-body", text: o.body || "" }));
      if (o.footer) t.append(el("div", { class: "tpl-footer", text: o.footer }));
      const btns = o.buttons || [];
      if (btns.length) {
        t.append(el("div", { class: "tpl-buttons" }, btns.map((bt) => templateButton(ctx, m, bt))));
      }
      c.append(t);
      break;
    }
    case "interactive":
      c.append(interactiveEl(ctx, m, o));
      break;
    default:
      c.append(el("div", { class: "unsupported", text: "This message type (" + m.type + ") is not supported on this phone." }));
  }
  return c;
}

function templateButton(ctx, m, bt) {
  switch (bt.type) {
    case "url":
      return el("a", { class: "tpl-button url", href: bt.url, target: "_blank", rel: "noopener noreferrer", text: "↗ " + bt.text });
    case "phone_number":
      return el("a", { class: "tpl-button phone", href: "tel:" + bt.phone_number, text: "📞 " + bt.text });
    case "copy_code":
      return el("button", { type: "button", class: "tpl-button copy", "data-code": bt.code || "", text: "⧉ " + bt.text,
        onclick: () => navigator.clipboard && navigator.clipboard.writeText(bt.code || "").catch(() => {}) });
    default:
      return el("button", { type: "button", class: "tpl-button quick-reply", "data-payload": bt.payload || "", text: bt.text,
        disabled: m.dir !== "in", onclick: () => choose(ctx, m, bt.payload || bt.text, bt.text) });
  }
}

function interactiveEl(ctx, m, o) {
  const box = el("div", { class: "interactive", "data-kind": o.type || "" });
  const h = o.header;
  if (h) {
    let he = null;
    if (h.type === "text") he = el("div", { class: "hdr-text", text: h.text });
    else he = mediaEl(ctx, h.type, m.file, m.mime_type, m.filename || (h.document && h.document.filename), m.size, "");
    box.append(el("div", { class: "int-header" }, he));
  }
  if (o.body) box.append(el("div", { class: "int-body", text: o.body.text }));
  if (o.footer) box.append(el("div", { class: "int-footer", text: o.footer.text }));
  const a = o.action || {};
  if (a.buttons && a.buttons.length) {
    box.append(el("div", { class: "buttons" }, a.buttons.map((bt) => {
      const r = bt.reply || {};
      return el("button", { type: "button", class: "int-button", "data-choice": r.id, text: r.title,
        disabled: m.dir !== "in", onclick: () => choose(ctx, m, r.id, r.title) });
    })));
  }
  if (a.sections && a.sections.length) {
    const rows = el("div", { class: "list-rows", hidden: true, role: "menu" },
      a.sections.map((s) => el("div", { class: "list-section" },
        s.title ? el("div", { class: "section-title", text: s.title }) : null,
        (s.rows || []).map((r) => el("button", { type: "button", class: "list-row", "data-choice": r.id, role: "menuitem",
          disabled: m.dir !== "in", onclick: () => choose(ctx, m, r.id, r.title) },
          el("span", { class: "row-title", text: r.title }),
          r.description ? el("span", { class: "row-description", text: r.description }) : null)))));
    box.append(el("button", { type: "button", class: "list-open", text: "☰ " + (a.button || "Choose"),
      onclick: () => { rows.hidden = !rows.hidden; } }), rows);
  }
  return box;
}

async function choose(ctx, m, choice, title) {
  showError(null);
  try {
    await api("POST", "/api/phones/" + ctx.number + "/messages/" + encodeURIComponent(m.id) + "/choose", { choice, title });
  } catch (err) { showError(err); }
}

// ---- composing ----

function resetComposer(ctx) {
  ctx.replyTo = null;
  emojiTarget = null;
  $("#replying").hidden = true;
  $("#emoji-picker").hidden = true;
  $("#text").value = "";
}

function startReply(ctx, m) {
  ctx.replyTo = m.id;
  const r = $("#replying");
  $(".label", r).textContent = "Replying to: " + summary({ ...m, dir: "in" });
  r.hidden = false;
  $("#text").focus();
}

$("#cancel-reply").addEventListener("click", () => {
  if (view && view.ctx) view.ctx.replyTo = null;
  $("#replying").hidden = true;
});

// The emoji picker sits above the composer (outside the message list,
// which is re-rendered) and says which message it reacts to.
let emojiTarget = null;
function pickEmoji(ctx, m) {
  emojiTarget = m;
  const p = $("#emoji-picker");
  $(".label", p).textContent = "React to: " + summary({ ...m, dir: "in" });
  p.hidden = false;
  $("button[data-emoji]", p).focus();
}

$("#emoji-picker").addEventListener("click", (ev) => {
  const p = $("#emoji-picker");
  if (ev.target.closest(".close")) { p.hidden = true; emojiTarget = null; return; }
  const b = ev.target.closest("button[data-emoji]");
  if (!b || !emojiTarget || !view || !view.ctx) return;
  p.hidden = true;
  sendJSON(view.ctx, { type: "reaction", reaction: { message_id: emojiTarget.id, emoji: b.dataset.emoji } }, false);
  emojiTarget = null;
});

async function sendJSON(ctx, body, withReply = true) {
  showError(null);
  if (withReply && ctx.replyTo) body.reply_to = ctx.replyTo;
  try {
    await api("POST", "/api/phones/" + ctx.number + "/chats/" + ctx.chat + "/messages", body);
    if (withReply) { ctx.replyTo = null; $("#replying").hidden = true; }
    return true;
  } catch (err) { showError(err); return false; }
}

$("#composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!view || !view.ctx) return;
  const t = $("#text");
  const text = t.value;
  if (!text.trim()) return;
  if (await sendJSON(view.ctx, { type: "text", text })) t.value = "";
});

$("#text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("#composer").requestSubmit(); }
});

$("#attach-btn").addEventListener("click", () => $("#attach").click());
$("#attach").addEventListener("change", async (ev) => {
  const input = ev.target;
  const f = input.files && input.files[0];
  if (!f || !view || !view.ctx) return;
  const ctx = view.ctx;
  const fd = new FormData();
  fd.append("file", f, f.name);
  const caption = $("#text").value.trim();
  if (caption) fd.append("caption", caption);
  if (ctx.replyTo) fd.append("reply_to", ctx.replyTo);
  showError(null);
  try {
    await api("POST", "/api/phones/" + ctx.number + "/chats/" + ctx.chat + "/messages", fd);
    $("#text").value = "";
    ctx.replyTo = null;
    $("#replying").hidden = true;
  } catch (err) { showError(err); } finally { input.value = ""; }
});

function dialogSend(id, build) {
  const d = $(id);
  d.addEventListener("close", () => {
    const f = $("form", d);
    if (d.returnValue === "send" && view && view.ctx) sendJSON(view.ctx, build(f));
    f.reset();
  });
}
// returnValue outlives a dialog's close (Esc keeps the last one): clear it
// first, so only the Send button sends.
function openDialog(id) {
  const d = $(id);
  d.returnValue = "";
  d.showModal();
}
$("#location-btn").addEventListener("click", () => openDialog("#location-dialog"));
$("#contact-btn").addEventListener("click", () => openDialog("#contact-dialog"));
dialogSend("#location-dialog", (f) => ({ type: "location", location: {
  latitude: Number(field(f, "latitude")), longitude: Number(field(f, "longitude")),
  name: field(f, "name") || undefined, address: field(f, "address") || undefined } }));
dialogSend("#contact-dialog", (f) => ({ type: "contacts", contacts: [{
  name: { formatted_name: field(f, "name"), first_name: field(f, "name").split(" ")[0] },
  phones: [{ phone: field(f, "phone"), type: "CELL" }] }] }));

route();
