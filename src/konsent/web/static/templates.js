// konsent template picker: choosing a template shows one field per variable and a live preview.
// Without JavaScript the page does the same in two steps (choose, then fill in and send).
(function () {
  "use strict";

  var data = document.getElementById("tpl-data");
  var choice = document.getElementById("tpl-choice");
  var form = document.getElementById("tpl-send");
  if (!data || !choice || !form) return;
  var templates = {};
  JSON.parse(data.textContent || "[]").forEach(function (t) { templates[String(t.id)] = t; });
  var vars = document.getElementById("tpl-vars");
  var body = document.getElementById("tpl-body");
  var preview = document.getElementById("tpl-preview");
  var idField = document.getElementById("tpl-id");
  var labelText = (document.getElementById("tpl-var-label") || {}).innerHTML || "{{N}}";

  document.querySelectorAll("[data-no-js-only]").forEach(function (el) { el.hidden = true; });

  function fill(text, values) {
    return text.replace(/\{\{\s*(\d+)\s*\}\}/g, function (whole, n) {
      var v = values[Number(n) - 1];
      return v ? v : "[" + n + "]";
    });
  }

  function update() {
    var t = templates[choice.value];
    if (!t) return;
    var values = Array.prototype.map.call(vars.querySelectorAll("input"), function (i) { return i.value; });
    preview.textContent = (t.header ? t.header + "\n" : "") + fill(t.body, values) +
      (t.buttons.length ? "\n[" + t.buttons.join("] [") + "]" : "");
    preview.hidden = false;
  }

  function show() {
    var t = templates[choice.value];
    form.hidden = !t;
    if (!t) return;
    idField.value = t.id;
    body.textContent = t.body;
    var old = Array.prototype.map.call(vars.querySelectorAll("input"), function (i) { return i.value; });
    while (vars.firstChild) vars.removeChild(vars.firstChild);
    for (var n = 1; n <= t.variables; n++) {
      var label = document.createElement("label");
      label.setAttribute("for", "tpl-var-" + n);
      label.textContent = labelText.replace("{{N}}", "{{" + n + "}}");
      var input = document.createElement("input");
      input.id = "tpl-var-" + n;
      input.name = "var";
      input.required = true;
      input.maxLength = 1000;
      input.setAttribute("list", "tpl-fields");
      input.value = old[n - 1] || "";
      input.addEventListener("input", update);
      vars.appendChild(label);
      vars.appendChild(input);
    }
    update();
  }

  choice.addEventListener("change", show);
  vars.querySelectorAll("input").forEach(function (i) { i.addEventListener("input", update); });
  if (choice.value) update();
})();
