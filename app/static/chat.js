// The room page: join with `since` the last seq shown, render broadcasts once, send with a client_id.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  if (!root) return;
  const roomId = Number(root.dataset.room);
  const list = document.getElementById("messages");
  const status = document.getElementById("status");
  const form = document.getElementById("send");
  const input = document.getElementById("text");
  const seen = new Set();
  let lastSeq = 0;

  for (const li of list.querySelectorAll("li[data-id]")) {
    seen.add(Number(li.dataset.id));
    lastSeq = Math.max(lastSeq, Number(li.dataset.seq));
  }

  // a random key per tab: nginx hashes on it so each tab sticks to one worker
  let affinity = sessionStorage.getItem("chat-affinity");
  if (!affinity) {
    affinity = Math.random().toString(36).slice(2) + Date.now().toString(36);
    sessionStorage.setItem("chat-affinity", affinity);
  }
  const socket = io({ query: { affinity: affinity }, transports: ["websocket", "polling"] });

  function render(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    lastSeq = Math.max(lastSeq, m.seq);
    const li = document.createElement("li");
    li.dataset.seq = m.seq;
    li.dataset.id = m.id;
    const who = document.createElement("b");
    who.textContent = m.username;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.message; // text, never HTML
    li.append(who, " ", text);
    // keep seq order even when broadcasts from two workers cross
    let after = list.lastElementChild;
    while (after && Number(after.dataset.seq) > m.seq) after = after.previousElementSibling;
    list.insertBefore(li, after ? after.nextSibling : list.firstChild);
    li.scrollIntoView({ block: "end" });
  }

  function notice(text) {
    const li = document.createElement("li");
    li.className = "notice";
    li.textContent = text;
    list.appendChild(li);
  }

  socket.on("connect", function () {
    status.textContent = "online";
    socket.emit("join", { room: roomId, since: lastSeq }, function (ack) {
      if (!ack || !ack.ok) {
        status.textContent = (ack && ack.detail) || "could not join";
        return;
      }
      ack.messages.forEach(render);
    });
  });
  socket.on("disconnect", function () { status.textContent = "offline, reconnecting…"; });
  socket.on("connect_error", function () { status.textContent = "offline, reconnecting…"; });
  socket.on("message", function (m) { if (m.room === roomId) render(m); });
  socket.on("notice", function (n) {
    if (n.room === roomId) notice(n.username + (n.kind === "join" ? " joined" : " left"));
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    const clientId = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
    socket.emit("message", { room: roomId, message: text, client_id: clientId }, function (ack) {
      if (ack && ack.ok) {
        input.value = "";
      } else {
        status.textContent = (ack && ack.detail) || "not sent";
      }
    });
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();
