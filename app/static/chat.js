// The room page.
//
// Incoming: messages are kept once by id and placed by seq. The page remembers the highest
// seq it holds with nothing missing below it (`contiguous`); after any (re)connect, or when a
// broadcast skips a seq, it joins again with `since` = that seq and the database fills the gap.
// Outgoing: one queue, one message in flight at a time, each with a client_id that every retry
// reuses, so the server stores it once. Messages typed while offline wait in the queue.
// Text is only ever set as text (textContent / text nodes), never as HTML.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  if (!root) return;

  const $ = (id) => document.getElementById(id);
  const roomId = Number(root.dataset.room);
  const me = root.dataset.username;
  const maxLength = Number(root.dataset.maxLength);
  const historyUrl = root.dataset.historyUrl;
  const T = JSON.parse($("chat-strings").textContent);
  const scroller = $("scroller");
  const list = $("messages");
  const outboxList = $("outbox");
  const edge = $("history-edge");
  const statusEl = $("status");
  const jump = $("jump");
  const form = $("send");
  const input = $("text");
  const counter = $("counter");

  const ACK_TIMEOUT = 10000;
  const PAGE = 50;
  const byId = new Map(); // message id -> its <li>
  const seqs = new Set();
  let contiguous = 0;
  let oldest = Infinity;
  let hasOlder = root.dataset.more === "true";
  let loadingOlder = false;
  let joined = false;
  let joining = false;
  let rejoinWanted = false;
  let connectionGeneration = 0;

  const pending = new Map(); // client_id -> outgoing entry {clientId, text, el, attempt}
  const queue = [];
  let inflight = null;
  let holdUntil = 0; // the server said rate_limited: send nothing before this time (ms)

  // ---- rendering -----------------------------------------------------------------------

  const lang = document.documentElement.lang || undefined;
  const timeFormat = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" });
  const dayTimeFormat = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
  const fullFormat = new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "medium" });

  function formatTime(date) {
    const today = new Date();
    const sameDay = date.toDateString() === today.toDateString();
    return (sameDay ? timeFormat : dayTimeFormat).format(date);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // links only for http(s) URLs, opened without handing this page to the target
  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  function safeLink(raw) {
    let url;
    try {
      url = new URL(raw);
    } catch (_) {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    const a = el("a", "", raw);
    a.href = url.href;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    return a;
  }

  function fillText(node, text) {
    let last = 0;
    for (const match of text.matchAll(URL_RE)) {
      // trailing punctuation belongs to the sentence, not the link
      const raw = match[0].replace(/[.,;:!?)\]}]+$/, "");
      node.append(text.slice(last, match.index));
      node.append(safeLink(raw) || raw);
      last = match.index + raw.length;
    }
    node.append(text.slice(last));
  }

  function messageElement(author, text, date, li) {
    li = li || el("li");
    li.replaceChildren();
    li.className = "msg" + (author === me ? " mine" : "");
    const meta = el("div", "msg-meta");
    meta.append(el("span", "author", author === me ? T.you : author));
    if (date) {
      const time = el("time", "", formatTime(date));
      time.dateTime = date.toISOString();
      time.title = fullFormat.format(date);
      meta.append(" ", time);
    }
    meta.append(el("span", "msg-state"));
    const bubble = el("div", "bubble");
    fillText(bubble, text);
    li.append(meta, bubble);
    return li;
  }

  function sortKey(node) {
    return Number(node.dataset.seq || node.dataset.after || 0);
  }

  // returns true when the message was new
  function place(m) {
    if (m.room !== roomId || byId.has(m.id)) return false;
    const mine = m.username === me && m.client_id && pending.get(m.client_id);
    const li = messageElement(m.username, m.message, new Date(m.created_at), mine && mine.el);
    li.dataset.id = m.id;
    li.dataset.seq = m.seq;
    if (mine) {
      pending.delete(m.client_id);
      setState(mine, "sent");
    }
    let after = list.lastElementChild;
    while (after && sortKey(after) > m.seq) after = after.previousElementSibling;
    list.insertBefore(li, after ? after.nextSibling : list.firstChild);
    remember(m, li);
    return true;
  }

  function remember(m, li) {
    byId.set(m.id, li);
    seqs.add(m.seq);
    oldest = Math.min(oldest, m.seq);
    while (seqs.has(contiguous + 1)) contiguous += 1;
  }

  function highestSeq() {
    let high = contiguous;
    for (const s of seqs) if (s > high) high = s;
    return high;
  }

  function notice(kind, username) {
    const li = el("li", "notice", (kind === "join" ? T.joined : T.left).replace("{name}", username));
    li.dataset.after = String(highestSeq() + 0.5);
    list.append(li);
  }

  // ---- scrolling -----------------------------------------------------------------------

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  }

  function toBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    jump.hidden = true;
  }

  // add live messages; follow them only when the reader was already at the bottom
  function addLive(messages, follow) {
    const wasAtBottom = atBottom();
    let added = 0;
    for (const m of messages) if (place(m)) added += 1;
    if (wasAtBottom || follow) toBottom();
    else if (added) jump.hidden = false;
  }

  function setEdge() {
    edge.textContent = hasOlder ? T.more : T.beginning;
    edge.dataset.state = hasOlder ? "more" : "beginning";
  }

  async function loadOlder() {
    if (loadingOlder || !hasOlder || oldest === Infinity) return;
    loadingOlder = true;
    edge.textContent = T.loadingOlder;
    edge.dataset.state = "loading";
    try {
      const params = new URLSearchParams({ before: String(oldest), limit: String(PAGE) });
      const response = await fetch(historyUrl + "?" + params, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(String(response.status));
      const page = await response.json();
      // keep what the reader is looking at in place while older messages go in above it
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      const fragment = document.createDocumentFragment();
      for (const m of page.messages) {
        if (m.room !== roomId || byId.has(m.id)) continue;
        const li = messageElement(m.username, m.message, new Date(m.created_at));
        li.dataset.id = m.id;
        li.dataset.seq = m.seq;
        fragment.append(li);
        remember(m, li);
      }
      list.insertBefore(fragment, list.firstChild);
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
      hasOlder = page.more;
      setEdge();
    } catch (_) {
      edge.textContent = T.olderFailed;
      edge.dataset.state = "failed";
    } finally {
      loadingOlder = false;
    }
    fillViewport();
  }

  // a short page cannot be scrolled to the top: fetch more until it can, or nothing is left
  function fillViewport() {
    if (hasOlder && scroller.scrollHeight <= scroller.clientHeight + 8) loadOlder();
  }

  scroller.addEventListener("scroll", function () {
    if (scroller.scrollTop < 120) loadOlder();
    if (atBottom()) jump.hidden = true;
  });
  jump.addEventListener("click", function () {
    toBottom();
    input.focus();
  });

  // ---- connection ----------------------------------------------------------------------

  function setStatus(state) {
    statusEl.dataset.state = state;
    statusEl.querySelector(".status-text").textContent = T[state];
    root.dataset.connection = state;
  }

  // a random key per tab: nginx hashes on it so each tab sticks to one worker
  let affinity = sessionStorage.getItem("chat-affinity");
  if (!affinity) {
    affinity = randomId();
    sessionStorage.setItem("chat-affinity", affinity);
  }
  const socket = io({
    query: { affinity: affinity },
    transports: ["websocket", "polling"],
    // where WebSocket cannot get through (a proxy, a firewall), fall back to long-polling
    tryAllTransports: true,
    reconnectionDelayMax: 3000,
  });

  // join (again) asking for everything after the last seq held without a gap
  function join() {
    if (!socket.connected) return;
    if (joining) {
      rejoinWanted = true;
      return;
    }
    joining = true;
    const generation = connectionGeneration;
    const since = contiguous;
    socket.timeout(ACK_TIMEOUT).emit("join", { room: roomId, since: since }, function (err, ack) {
      if (generation !== connectionGeneration) return; // an answer for a connection since lost
      joining = false;
      if (err) {
        if (socket.connected) setTimeout(join, 1000);
        return;
      }
      if (ack && ack.error === "rate_limited") {
        // too many joins (reconnecting again and again): join once the server allows it
        setTimeout(join, retryDelay(ack));
        return;
      }
      if (!ack || !ack.ok) {
        setStatus(ack && ack.error === "unauthorized" ? "signedOut" : "joinFailed");
        return;
      }
      root.dataset.worker = ack.worker;
      joined = true;
      setStatus("online");
      addLive(ack.messages, false);
      // more to fetch, or a hole this answer narrowed but did not close yet
      if (ack.more || rejoinWanted || (highestSeq() > contiguous && contiguous > since)) {
        rejoinWanted = false;
        join();
      }
      pump();
    });
  }

  socket.on("connect", function () {
    setStatus("connecting");
    join();
  });
  socket.on("disconnect", function (reason) {
    connectionGeneration += 1;
    joined = false;
    joining = false;
    setStatus("offline");
    requeueInflight();
    // the server closed this connection (e.g. a restart): socket.io leaves that to us
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", function (err) {
    joined = false;
    if (err && err.message === "unauthorized") {
      setStatus("signedOut");
      // the session ended (logout, expiry, a password change): retrying cannot help
      socket.disconnect();
    } else setStatus("offline");
  });
  socket.on("message", function (m) {
    if (m.room !== roomId) return;
    addLive([m], m.username === me && pending.has(m.client_id));
    // a seq was skipped (a lost broadcast): let the database fill it
    if (joined && highestSeq() > contiguous) join();
  });
  socket.on("notice", function (n) {
    if (n.room !== roomId || n.username === me) return;
    const wasAtBottom = atBottom();
    notice(n.kind, n.username);
    if (wasAtBottom) toBottom();
  });

  // ---- sending -------------------------------------------------------------------------

  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setState(entry, state, detail) {
    const li = entry.el;
    li.dataset.state = state;
    li.classList.toggle("failed", state === "failed");
    const slot = li.querySelector(".msg-state");
    slot.replaceChildren();
    if (state === "sent") {
      slot.textContent = "✓";
      slot.title = T.sent;
      return;
    }
    slot.append(el("span", "", state === "failed" ? T.failed + (detail ? ": " + detail : "") : T[state]));
    if (state === "failed") {
      const retry = el("button", "btn-link retry", T.retry);
      retry.type = "button";
      retry.addEventListener("click", function () {
        enqueue(entry);
      });
      slot.append(" ", retry);
    }
  }

  function enqueue(entry) {
    pending.set(entry.clientId, entry);
    queue.push(entry);
    setState(entry, joined ? "sending" : "queued");
    pump();
  }

  function retryDelay(ack) {
    return Math.ceil((Number(ack.retry_after) || 1) * 1000);
  }

  function pump() {
    if (inflight || !joined || !socket.connected || !queue.length) return;
    if (Date.now() < holdUntil) return; // the timer set with holdUntil pumps again
    const entry = queue.shift();
    if (!pending.has(entry.clientId)) return pump(); // delivered meanwhile (seen in a catch-up)
    const attempt = {};
    entry.attempt = attempt;
    inflight = entry;
    setState(entry, "sending");
    const payload = { room: roomId, message: entry.text, client_id: entry.clientId };
    socket.timeout(ACK_TIMEOUT).emit("message", payload, function (err, ack) {
      if (entry.attempt !== attempt) return; // a disconnect put it back in the queue
      inflight = null;
      if (err && !pending.has(entry.clientId)) {
        // no ack in time, but its broadcast came: it is stored
        setState(entry, "sent");
      } else if (err) {
        setState(entry, "failed");
      } else if (ack && ack.ok) {
        // the broadcast may be late or lost (a retry is not broadcast again): place it now
        const wasAtBottom = atBottom();
        place({
          id: ack.id,
          seq: ack.seq,
          room: roomId,
          username: me,
          message: entry.text,
          created_at: entry.createdAt,
          client_id: entry.clientId,
        });
        pending.delete(entry.clientId);
        setState(entry, "sent");
        if (wasAtBottom) toBottom();
      } else if (ack && ack.error === "rate_limited") {
        // sent faster than the server allows: nothing was stored; send the same message
        // (same client_id) again once it says so, and the rest of the queue after it
        queue.unshift(entry);
        const delay = retryDelay(ack);
        holdUntil = Date.now() + delay;
        setTimeout(pump, delay);
        return;
      } else {
        if (ack && ack.error === "unauthorized") setStatus("signedOut");
        setState(entry, "failed", ack && ack.detail);
      }
      pump();
    });
  }

  function requeueInflight() {
    if (inflight) {
      inflight.attempt = null;
      queue.unshift(inflight);
      inflight = null;
    }
    for (const entry of queue) setState(entry, "queued");
  }

  function codePoints(text) {
    return Array.from(text).length;
  }

  function updateCounter() {
    const used = codePoints(input.value);
    const over = used - maxLength;
    counter.textContent = over > 0 ? T.tooLong.replace("{over}", over) : used >= maxLength * 0.8 ? used + " / " + maxLength : "";
    counter.classList.toggle("over", over > 0);
    input.setAttribute("aria-invalid", over > 0 ? "true" : "false");
    form.querySelector(".send").disabled = over > 0;
    // grow with the text, up to the limit set in CSS
    input.style.height = "auto";
    input.style.height = input.scrollHeight + "px";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || codePoints(text) > maxLength) return;
    const entry = { clientId: randomId(), text: text, createdAt: new Date().toISOString() };
    entry.el = messageElement(me, text, new Date());
    entry.el.dataset.clientId = entry.clientId;
    outboxList.append(entry.el);
    input.value = "";
    updateCounter();
    toBottom();
    enqueue(entry);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", updateCounter);

  // ---- start ---------------------------------------------------------------------------

  list.replaceChildren();
  for (const m of JSON.parse($("initial-messages").textContent)) place(m);
  // the server sent the newest messages without a hole: catching up starts after the last one
  contiguous = highestSeq();
  setEdge();
  toBottom();
  fillViewport();
  updateCounter();
})();
