// konsent inbox: live updates over server-sent events, canned replies, "is replying" notices.
// Pages work without it.
(function () {
  "use strict";

  var list = document.getElementById("inbox-rows");
  var thread = document.querySelector("[data-live-thread]");
  var notice = document.getElementById("live-notice");
  var replying = document.getElementById("replying-notice");
  var composer = document.querySelector("form.composer[data-typing-url]");
  var baseTitle = document.title;
  var unseen = 0;

  // Canned replies: picking one fills the composer, where the agent can still edit it.
  document.querySelectorAll("[data-canned-target]").forEach(function (select) {
    select.addEventListener("change", function () {
      var target = document.getElementById(select.getAttribute("data-canned-target"));
      if (target && select.value) {
        target.value = select.value;
        target.focus();
      }
    });
  });

  // Open a conversation at its newest message.
  if (thread) thread.scrollTop = thread.scrollHeight;

  // While this agent types, tell the others (at most every few seconds).
  var lastTyping = 0;
  if (composer) {
    var text = composer.querySelector("textarea");
    var token = composer.querySelector("input[name=csrf_token]");
    if (text && token && !text.disabled) {
      text.addEventListener("input", function () {
        var now = Date.now();
        if (now - lastTyping < 5000) return;
        lastTyping = now;
        var body = new URLSearchParams();
        body.set("csrf_token", token.value);
        fetch(composer.getAttribute("data-typing-url"), {
          method: "POST", credentials: "same-origin", body: body
        }).catch(function () { /* only a courtesy to colleagues */ });
      });
    }
  }

  // "Anna is replying": names from the page, shown for 20 seconds after the last note.
  var staff = {};
  var staffData = document.getElementById("inbox-staff");
  if (staffData) {
    try { staff = JSON.parse(staffData.textContent || "{}"); } catch (e) { staff = {}; }
  }
  var page = document.querySelector("[data-conversation-page]");
  var me = page ? page.getAttribute("data-me") : "";
  var typers = {};
  var typerTimer = null;
  function showTypers() {
    if (!replying) return;
    var now = Date.now();
    var names = [];
    Object.keys(typers).forEach(function (id) {
      if (now - typers[id] < 20000) names.push(staff[id] || "?");
      else delete typers[id];
    });
    var template = document.getElementById("replying-text");
    var label = replying.querySelector("[data-names]");
    if (names.length && template && label) {
      label.textContent = template.content.textContent.replace("{names}", names.join(", "));
      replying.hidden = false;
    } else if (!names.length) {
      replying.hidden = true;
    }
    if (typerTimer) clearTimeout(typerTimer);
    if (names.length) typerTimer = setTimeout(showTypers, 5000);
  }
  if (replying && !replying.hidden) setTimeout(function () { replying.hidden = true; }, 20000);

  if (!window.EventSource || (!list && !thread)) return;

  function announce() {
    if (notice) notice.hidden = false;
    if (document.hidden) {
      unseen += 1;
      document.title = "(" + unseen + ") " + baseTitle;
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      unseen = 0;
      document.title = baseTitle;
    }
  });

  function refresh(url, element, keepScroll) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        var top = element.scrollTop;
        element.innerHTML = html;
        element.scrollTop = keepScroll ? top : element.scrollHeight;
      })
      .catch(function () { /* the next event or a reload will catch up */ });
  }

  var pending = null;
  function scheduleList() {
    // Several events in a burst cause one refresh.
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      var qs = list.getAttribute("data-list-qs") || "";
      var current = thread ? thread.getAttribute("data-live-thread") : "";
      var url = "/admin/inbox/rows?" + qs + (current ? (qs ? "&" : "") + "current=" + current : "");
      refresh(url, list, true).then(announce);
    }, 100);
  }

  var source = new EventSource("/admin/inbox/events");
  source.addEventListener("inbox", function (event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    var mine = thread && String(data.conversation_id) === thread.getAttribute("data-live-thread");
    if (String(data.kind).indexOf("typing:") === 0) {
      var who = String(data.kind).slice(7);
      if (mine && who !== me) {
        typers[who] = Date.now();
        showTypers();
      }
      return;
    }
    if (list) scheduleList();
    if (mine) {
      var url = "/admin/inbox/" + data.conversation_id + "/thread";
      refresh(url, thread, false).then(function () {
        if (data.kind === "message_in") announce();
        if (data.kind === "message_out") { typers = {}; showTypers(); }
      });
    }
  });
  document.documentElement.setAttribute("data-live", "connecting");
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "open");
  });
})();
