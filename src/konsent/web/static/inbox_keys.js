// konsent inbox keyboard shortcuts: j/k next/previous conversation, r reply, e resolve,
// u back to the list, / search, ? help. Never while typing in a field. Pages work without it.
(function () {
  "use strict";

  var help = document.getElementById("keys-help");

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (!help.hidden) {
      var close = help.querySelector("[data-keys-close]");
      if (close) close.focus();
    }
  }

  if (help) {
    help.addEventListener("click", function (event) {
      if (event.target === help || event.target.hasAttribute("data-keys-close")) toggleHelp(false);
    });
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#inbox-rows li[data-conversation] a.row-link"));
  }

  function move(step) {
    var links = rows();
    if (!links.length) return;
    var current = -1;
    links.forEach(function (link, i) {
      var item = link.parentNode;
      if (item.getAttribute("aria-current") === "true" || link === document.activeElement) current = i;
    });
    var next = current === -1 ? 0 : Math.min(links.length - 1, Math.max(0, current + step));
    if (next === current) return;
    window.location.href = links[next].href;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      if (help && !help.hidden) { toggleHelp(false); return; }
      if (typing(event.target)) event.target.blur();
      return;
    }
    if (typing(event.target)) return;
    var reply = document.getElementById("reply-text");
    switch (event.key) {
      case "?":
        toggleHelp();
        break;
      case "j":
        move(1);
        break;
      case "k":
        move(-1);
        break;
      case "r":
        if (reply && !reply.disabled) { reply.focus(); } else { return; }
        break;
      case "e":
        var resolve = document.getElementById("resolve-form");
        if (!resolve) return;
        resolve.submit();
        break;
      case "u":
        var back = document.querySelector("[data-key-back]");
        if (!back) return;
        window.location.href = back.href;
        break;
      case "/":
        var search = document.querySelector(".more-filters input[type=search]");
        if (!search) return;
        search.closest("details").open = true;
        search.focus();
        break;
      default:
        return;
    }
    event.preventDefault();
  });
})();
