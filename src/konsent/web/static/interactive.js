// The inbox's "buttons, list or link" form: show only the fields of the chosen kind (works without it).
(function () {
  "use strict";
  document.querySelectorAll("[data-interactive]").forEach(function (box) {
    var radios = box.querySelectorAll("input[name=kind]");
    function show() {
      var chosen = box.querySelector("input[name=kind]:checked");
      box.querySelectorAll("[data-interactive-kind]").forEach(function (set) {
        set.hidden = !!chosen && set.getAttribute("data-interactive-kind") !== chosen.value;
      });
    }
    radios.forEach(function (r) { r.addEventListener("change", show); });
    show();
  });
})();
