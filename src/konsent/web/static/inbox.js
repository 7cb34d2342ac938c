// konsent inbox: live updates over server-sent events, canned replies. Pages work without it.
(function () {
  "use strict";

  var list = document.getElementById("inbox-rows");
  var thread = document.querySelector("[data-live-thread]");
  var notice = document.getElementById("live-notice");
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

  function refresh(url, element) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        element.innerHTML = html;
        if (element.scrollHeight) element.scrollTop = element.scrollHeight;
      })
      .catch(function () { /* the next event or a reload will catch up */ });
  }

  var pending = null;
  function scheduleList() {
    // Several events in a burst cause one refresh.
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      refresh("/admin/inbox/rows" + window.location.search, list).then(announce);
    }, 100);
  }

  var source = new EventSource("/admin/inbox/events");
  source.addEventListener("inbox", function (event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (list) scheduleList();
    if (thread && String(data.conversation_id) === thread.getAttribute("data-live-thread")) {
      var url = "/admin/inbox/" + data.conversation_id + "/thread";
      refresh(url, thread).then(function () {
        if (data.kind === "message_in") announce();
      });
    }
  });
  document.documentElement.setAttribute("data-live", "connecting");
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "open");
  });
})();
