// Live progress of one broadcast: poll its JSON every two seconds while it runs (M3).
(function () {
  "use strict";
  var box = document.getElementById("bc-live");
  if (!box || box.dataset.live !== "yes") return;
  var finished = ["done", "cancelled", "paused", "draft"];
  function tick() {
    fetch(box.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) return;
        Object.keys(p.stats).forEach(function (k) {
          var cell = box.querySelector('[data-stat="' + k + '"]');
          if (cell) cell.textContent = p.stats[k];
        });
        var bar = document.getElementById("bc-progress");
        bar.max = Math.max(1, p.total);
        bar.value = p.handled;
        bar.textContent = p.handled + " / " + p.total;
        return fetch(box.dataset.funnel, { credentials: "same-origin" })
          .then(function (r) { return r.text(); })
          .then(function (svg) {
            document.getElementById("bc-funnel").innerHTML = svg;
            if (finished.indexOf(p.state) >= 0) { window.location.reload(); return; }
            setTimeout(tick, 2000);
          });
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 2000);
})();
