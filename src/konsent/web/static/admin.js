// konsent admin: small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // Ask before irreversible actions (forms marked with data-confirm).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Copy buttons for webhook URLs; shown only when the clipboard is available.
  if (navigator.clipboard) {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) return;
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          var label = button.textContent;
          button.textContent = "✓";
          setTimeout(function () { button.textContent = label; }, 1500);
        });
      });
    });
  }

  // Keep long conversations scrolled to the newest message.
  var chat = document.querySelector(".chat");
  if (chat && location.hash === "#conversation") {
    var last = chat.lastElementChild;
    if (last) last.scrollIntoView({ block: "end" });
  }
})();
