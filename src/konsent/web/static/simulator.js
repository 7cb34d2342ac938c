/* konsent simulator phone (CH1): plays a contact on the simulator channel.
 * The phone's number, name and chat log live in this browser's localStorage only; the server
 * lets this browser act only as the phones it made (an HttpOnly cookie), so cfg.account is the
 * page key from the link, not a bare account number.
 */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("sim-config").textContent);
  var S = cfg.strings;
  var list = document.getElementById("sim-messages");
  var compose = document.getElementById("sim-compose");
  var input = document.getElementById("sim-text");
  var sendBtn = document.getElementById("sim-send");
  var phoneIn = document.getElementById("sim-phone");
  var nameIn = document.getElementById("sim-name");
  var newNumber = document.getElementById("sim-new-number");
  var errorEl = document.getElementById("sim-error");
  var profile = document.getElementById("sim-profile");

  var store = {
    get: function (key) {
      try { return window.localStorage.getItem(key); } catch (e) { return null; }
    },
    set: function (key, value) {
      try { window.localStorage.setItem(key, value); } catch (e) { /* private mode: memory only */ }
    }
  };

  var log = null; // {items: [...], after: n} for the current phone
  var pollTimer = null;
  var pollGeneration = 0;
  var pendingAcks = [];
  var sending = false;

  function randomPhone() {
    var digits = "";
    for (var i = 0; i < 7; i++) digits += Math.floor(Math.random() * 10);
    return "+49 1555 " + digits;
  }

  function phoneKey() {
    return "konsent-sim-log:" + cfg.account + ":" + phoneIn.value.replace(/[^\d+]/g, "");
  }

  function loadLog() {
    var raw = store.get(phoneKey());
    try { log = raw ? JSON.parse(raw) : null; } catch (e) { log = null; }
    if (!log || !Array.isArray(log.items)) log = { items: [], after: 0 };
  }

  function saveLog() {
    if (log.items.length > 300) log.items = log.items.slice(-300);
    store.set(phoneKey(), JSON.stringify(log));
  }

  function showError(message) {
    errorEl.textContent = message || "";
    errorEl.hidden = !message;
  }

  function timeText(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    return d.toLocaleTimeString(cfg.lang === "de" ? "de-DE" : "en-GB", { hour: "2-digit", minute: "2-digit" });
  }

  function bubble(item) {
    var li = document.createElement("li");
    li.className = "sim-msg " + (item.dir === "in" ? "in" : "out");
    if (item.id) li.setAttribute("data-id", String(item.id));
    if (item.media && item.media.url) {
      // A link to the company's file, never loaded by the page itself (no request to their CDN).
      var link = document.createElement("a");
      link.className = "sim-media";
      link.href = item.media.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer nofollow";
      var label = S["media_" + item.media.kind] || item.media.kind;
      link.textContent = "📎 " + label + ": " + (item.media.filename || item.media.url);
      li.appendChild(link);
    }
    var body = document.createElement("div");
    body.className = "sim-body";
    body.textContent = item.text;
    if (item.text) li.appendChild(body);
    if (item.buttons && item.buttons.length) {
      var row = document.createElement("div");
      row.className = "sim-buttons";
      item.buttons.forEach(function (b) {
        var btn = document.createElement("button");
        btn.type = "button";
        btn.className = "sim-btn";
        btn.textContent = b.title;
        btn.disabled = !!item.answered;
        btn.addEventListener("click", function () {
          item.answered = true;
          saveLog();
          send(b.title, b.id);
        });
        row.appendChild(btn);
      });
      li.appendChild(row);
    }
    if (item.link && item.link.url) {
      // A link button: opens the company's page in a new tab, never loaded by the page itself.
      var cta = document.createElement("a");
      cta.className = "sim-btn sim-link";
      cta.href = item.link.url;
      cta.target = "_blank";
      cta.rel = "noopener noreferrer nofollow";
      cta.textContent = "🔗 " + item.link.title;
      li.appendChild(cta);
    }
    var meta = document.createElement("div");
    meta.className = "sim-meta";
    var time = document.createElement("time");
    time.dateTime = item.at;
    time.textContent = timeText(item.at);
    meta.appendChild(time);
    if (item.dir === "out") {
      var tick = document.createElement("span");
      tick.className = "sim-tick";
      tick.textContent = " ✓";
      tick.title = S.sent;
      meta.appendChild(tick);
    }
    li.appendChild(meta);
    return li;
  }

  function render() {
    list.textContent = "";
    if (!log.items.length) {
      var empty = document.createElement("li");
      empty.className = "sim-empty";
      empty.textContent = S.empty;
      list.appendChild(empty);
    }
    log.items.forEach(function (item) { list.appendChild(bubble(item)); });
    list.scrollTop = list.scrollHeight;
  }

  function append(item) {
    log.items.push(item);
    saveLog();
    var empty = list.querySelector(".sim-empty");
    if (empty) empty.remove();
    list.appendChild(bubble(item));
    list.scrollTop = list.scrollHeight;
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        return { ok: resp.ok, data: data };
      });
    });
  }

  function send(text, button) {
    if (sending) return;
    sending = true;
    sendBtn.disabled = true;
    var phone = phoneIn.value;
    post("/simulator/api/send", {
      account: cfg.account,
      phone: phone,
      text: text,
      name: nameIn.value,
      lang: cfg.lang,
      button: button || null
    })
      .then(function (r) {
        if (!r.ok) {
          showError(r.data.message || S.error_generic);
          return;
        }
        showError("");
        append({ dir: "out", text: text, at: new Date().toISOString() });
        if (!button) input.value = "";
        schedulePoll(200);
      })
      .catch(function () { showError(S.error_network); })
      .then(function () {
        sending = false;
        sendBtn.disabled = false;
      });
  }

  function flushAcks() {
    if (!pendingAcks.length || document.visibilityState === "hidden") return;
    var ids = pendingAcks.splice(0, 200);
    var body = { account: cfg.account, phone: phoneIn.value, ids: ids, status: "read", lang: cfg.lang };
    post("/simulator/api/ack", body).catch(function () {
      pendingAcks = ids.concat(pendingAcks); // try again with the next poll
    });
  }

  function schedulePoll(delay) {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  function poll() {
    pollTimer = null;
    var generation = pollGeneration;
    var url =
      "/simulator/api/inbox?account=" + encodeURIComponent(cfg.account) +
      "&phone=" + encodeURIComponent(phoneIn.value) +
      "&after=" + encodeURIComponent(log.after || 0);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (data) {
          return { ok: resp.ok, data: data };
        });
      })
      .then(function (r) {
        if (generation !== pollGeneration) return; // the number changed meanwhile
        if (!r.ok) {
          showError(r.data.message || S.error_generic);
          schedulePoll(3000);
          return;
        }
        if (errorEl.textContent === S.error_network) showError("");
        (r.data.messages || []).forEach(function (m) {
          append({ dir: "in", id: m.id, text: m.text, buttons: m.buttons || [], media: m.media || null, link: m.link || null, at: m.at });
          log.after = Math.max(log.after || 0, m.id);
          pendingAcks.push(m.provider_id);
        });
        saveLog();
        flushAcks();
        schedulePoll(1000);
      })
      .catch(function () {
        if (generation !== pollGeneration) return;
        showError(S.error_network);
        schedulePoll(3000);
      });
  }

  function switchPhone() {
    store.set("konsent-sim-phone", phoneIn.value);
    pollGeneration++;
    pendingAcks = [];
    showError("");
    loadLog();
    render();
    schedulePoll(0);
  }

  phoneIn.value = store.get("konsent-sim-phone") || randomPhone();
  store.set("konsent-sim-phone", phoneIn.value);
  nameIn.value = store.get("konsent-sim-name") || "";

  phoneIn.addEventListener("change", switchPhone);
  nameIn.addEventListener("change", function () { store.set("konsent-sim-name", nameIn.value); });
  newNumber.addEventListener("click", function () {
    phoneIn.value = randomPhone();
    switchPhone();
  });
  profile.addEventListener("submit", function (ev) { ev.preventDefault(); switchPhone(); });
  compose.addEventListener("submit", function (ev) {
    ev.preventDefault();
    send(input.value);
  });
  document.addEventListener("visibilitychange", flushAcks);

  loadLog();
  render();
  poll();
})();
