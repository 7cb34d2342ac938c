/* konsent opt-in widget (C1, C2, U2).
 *
 * Embed with one tag:
 *   <script src="https://konsent.example/widget.js" data-konsent-tenant="demo" async></script>
 * Optional: data-konsent-target="element-id" (render there), data-konsent-lang="de|en".
 * No cookies, no storage: the widget keeps its state in memory only.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.getAttribute("data-konsent-tenant")) {
    var all = document.querySelectorAll("script[data-konsent-tenant]:not([data-konsent-ready])");
    script = all.length ? all[all.length - 1] : null;
  }
  if (!script || script.getAttribute("data-konsent-ready")) return;
  script.setAttribute("data-konsent-ready", "1");

  var tenant = script.getAttribute("data-konsent-tenant");
  var base = script.src.replace(/\/widget\.js(?:[?#].*)?$/, "");
  var api = base + "/api/public/v1/widget/" + encodeURIComponent(tenant);
  var uid = "konsent-" + Math.random().toString(36).slice(2, 8);
  var FALLBACK = {
    de: "Das Anmeldeformular konnte nicht geladen werden. Bitte versuchen Sie es später erneut.",
    en: "The sign-up form could not be loaded. Please try again later."
  };

  function pickLang(value) {
    return /^de\b/i.test(value || "") ? "de" : "en";
  }

  var state = {
    lang: pickLang(
      script.getAttribute("data-konsent-lang") ||
        (navigator.languages && navigator.languages[0]) ||
        navigator.language
    ),
    config: null,
    channel: null,
    topics: {},
    result: null,
    error: "",
    busy: false
  };

  var host = null;
  var targetId = script.getAttribute("data-konsent-target");
  if (targetId) host = document.getElementById(targetId);
  if (!host) {
    host = document.createElement("div");
    script.parentNode.insertBefore(host, script.nextSibling);
  }
  var root = document.createElement("div");
  root.className = "konsent-root";
  root.setAttribute("data-testid", "konsent-widget");
  host.appendChild(root);

  injectStyle();
  load(false);

  /* ---------- helpers ---------- */

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    var key;
    for (key in attrs || {}) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key) || attrs[key] === null || attrs[key] === undefined) continue;
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    }
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function s(key) {
    return (state.config && state.config.strings[key]) || key;
  }

  function request(method, path, body) {
    var init = { method: method, credentials: "omit", mode: "cors", headers: { Accept: "application/json" } };
    if (body) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(api + path, init).then(function (resp) {
      return resp
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          return { ok: resp.ok, status: resp.status, data: data };
        });
    });
  }

  /* ---------- loading and submitting ---------- */

  function load(keepFocusOnSwitch) {
    return request("GET", "/config?lang=" + state.lang)
      .then(function (r) {
        if (!r.ok) throw new Error(r.data.message || FALLBACK[state.lang]);
        state.config = r.data;
        if (state.channel === null && r.data.channels.length) state.channel = r.data.channels[0].id;
        render(keepFocusOnSwitch);
      })
      .catch(function (err) {
        state.config = null;
        root.textContent = "";
        root.appendChild(el("p", { className: "konsent-error", role: "alert", text: err.message || FALLBACK[state.lang] }));
      });
  }

  function submit(ev) {
    ev.preventDefault();
    if (state.busy) return;
    var cfg = state.config;
    var ticked = cfg.topics
      .map(function (t) { return t.slug; })
      .filter(function (slug) { return state.topics[slug]; });
    if (state.channel === null) return showError(s("choose_channel"), "channel");
    if (!ticked.length) return showError(s("tick_topic"), "topic");
    state.busy = true;
    state.error = "";
    render(false, "submit");
    request("POST", "/optin", {
      channel_account_id: state.channel,
      topics: ticked,
      lang: state.lang,
      // The page, without query or fragment: those may carry personal data.
      source_url: (location.origin + location.pathname).slice(0, 500),
      consent_version: cfg.consent.version
    })
      .then(function (r) {
        state.busy = false;
        if (r.ok) {
          state.result = r.data;
          render(false, "result");
          return;
        }
        state.error = r.data.message || s("error_generic");
        if (r.status === 409) return load(false).then(function () { showError(state.error, "submit"); });
        showError(state.error, "submit");
      })
      .catch(function () {
        state.busy = false;
        showError(s("error_network"), "submit");
      });
  }

  function showError(message, focus) {
    state.error = message;
    render(false, focus);
  }

  function switchLang(lang) {
    if (lang === state.lang) return;
    state.lang = lang;
    state.error = "";
    load(true);
  }

  /* ---------- rendering ---------- */

  function render(fromSwitch, focus) {
    var cfg = state.config;
    root.textContent = "";
    root.setAttribute("lang", cfg.locale);

    var langGroup = el("div", { className: "konsent-lang", role: "group", "aria-label": s("language") }, [
      ["de", "DE", "Deutsch"],
      ["en", "EN", "English"]
    ].map(function (l) {
      var b = el("button", {
        type: "button",
        className: "konsent-lang-btn",
        lang: l[0],
        "aria-pressed": String(state.lang === l[0]),
        "aria-label": l[2],
        "data-testid": "konsent-lang-" + l[0],
        text: l[1]
      });
      b.addEventListener("click", function () { switchLang(l[0]); });
      return b;
    }));
    root.appendChild(el("div", { className: "konsent-head" }, [
      el("h2", { className: "konsent-title", id: uid + "-title", text: s("title") }),
      langGroup
    ]));

    if (state.result) {
      root.appendChild(renderResult());
    } else if (!cfg.channels.length) {
      root.appendChild(el("p", { className: "konsent-note", text: s("no_channels") }));
    } else {
      root.appendChild(renderForm());
    }

    var target = null;
    if (fromSwitch) target = root.querySelector('.konsent-lang-btn[lang="' + state.lang + '"]');
    else if (focus === "result") target = root.querySelector(".konsent-result-title");
    else if (focus === "channel") target = root.querySelector('input[type="radio"]');
    else if (focus === "topic") target = root.querySelector('input[type="checkbox"]');
    else if (focus === "submit") target = root.querySelector(".konsent-submit");
    if (target) target.focus();
  }

  function renderForm() {
    var cfg = state.config;
    var errId = uid + "-error";
    var consentId = uid + "-consent";

    var channels = el("fieldset", { className: "konsent-fieldset" }, [
      el("legend", { className: "konsent-legend", text: s("channel_legend") })
    ]);
    cfg.channels.forEach(function (c) {
      var id = uid + "-ch-" + c.id;
      var input = el("input", {
        type: "radio",
        name: uid + "-channel",
        id: id,
        value: String(c.id),
        className: "konsent-input",
        "data-testid": "konsent-channel-" + c.id
      });
      input.checked = state.channel === c.id;
      input.addEventListener("change", function () { state.channel = c.id; });
      channels.appendChild(el("div", { className: "konsent-option" }, [
        input,
        el("label", { "for": id, className: "konsent-label", text: c.label })
      ]));
    });

    var topics = el("fieldset", { className: "konsent-fieldset" }, [
      el("legend", { className: "konsent-legend", text: s("topics_legend") })
    ]);
    cfg.topics.forEach(function (t) {
      var id = uid + "-tp-" + t.slug;
      var descId = id + "-desc";
      var input = el("input", {
        type: "checkbox",
        id: id,
        value: t.slug,
        className: "konsent-input",
        "data-testid": "topic-" + t.slug,
        "aria-describedby": t.description ? descId : null
      });
      input.checked = !!state.topics[t.slug]; // never pre-ticked: only what the visitor ticked
      input.addEventListener("change", function () { state.topics[t.slug] = input.checked; });
      topics.appendChild(el("div", { className: "konsent-option" }, [
        input,
        el("label", { "for": id, className: "konsent-label" }, [
          el("span", { className: "konsent-topic-name", text: t.name }),
          t.description ? el("span", { className: "konsent-topic-desc", id: descId, text: t.description }) : null
        ])
      ]));
    });

    var privacy = cfg.privacy_url
      ? el("a", { href: cfg.privacy_url, target: "_blank", rel: "noopener", className: "konsent-link", text: s("privacy") })
      : null;

    var submitBtn = el("button", {
      type: "submit",
      className: "konsent-submit",
      "data-testid": "konsent-submit",
      "aria-describedby": consentId + " " + errId,
      text: state.busy ? s("submitting") : s("submit")
    });
    if (state.busy) submitBtn.setAttribute("aria-disabled", "true");

    var form = el("form", { className: "konsent-form", novalidate: "novalidate", "aria-labelledby": uid + "-title" }, [
      el("p", { className: "konsent-intro", text: s("intro") }),
      channels,
      topics,
      el("div", { className: "konsent-consent-box" }, [
        el("p", { className: "konsent-consent", id: consentId, "data-testid": "konsent-consent-text", text: cfg.consent.text }),
        el("p", { className: "konsent-withdraw", "data-testid": "konsent-withdrawal", text: cfg.withdrawal_notice }),
        privacy ? el("p", { className: "konsent-privacy" }, [privacy]) : null
      ]),
      el("p", { className: "konsent-error", id: errId, role: "alert", "data-testid": "konsent-error", text: state.error }),
      submitBtn
    ]);
    form.addEventListener("submit", submit);
    return form;
  }

  function renderResult() {
    var r = state.result;
    var qr = el("div", { className: "konsent-qr", role: "img", "aria-label": s("qr_label"), "data-testid": "konsent-qr" });
    var svg = parseSvg(r.qr_svg);
    if (svg) qr.appendChild(svg);
    var until = new Date(r.expires_at);
    var untilText = isNaN(until.getTime())
      ? r.expires_at
      : until.toLocaleString(state.lang === "de" ? "de-DE" : "en-GB", { dateStyle: "medium", timeStyle: "short" });
    var again = el("button", { type: "button", className: "konsent-secondary", text: s("start_over") });
    again.addEventListener("click", function () {
      state.result = null;
      state.topics = {};
      render(false, "topic");
    });
    return el("div", { className: "konsent-result", "aria-live": "polite" }, [
      el("h3", { className: "konsent-result-title", tabindex: "-1", text: s("result_title") }),
      el("p", { text: s("result_hint") }),
      el("p", {}, [
        el("a", {
          className: "konsent-deeplink",
          href: r.deep_link,
          target: "_blank",
          rel: "noopener",
          "data-testid": "konsent-deeplink",
          text: s("open_link")
        })
      ]),
      qr,
      el("p", { className: "konsent-code-line" }, [
        s("code_label") + ": ",
        el("code", { className: "konsent-code", "data-testid": "konsent-code", text: r.code })
      ]),
      el("p", { className: "konsent-small", text: s("code_hint") }),
      el("p", { className: "konsent-small", text: s("valid_until") + ": " + untilText }),
      again
    ]);
  }

  function parseSvg(text) {
    try {
      var doc = new DOMParser().parseFromString(text, "image/svg+xml");
      var svg = doc.documentElement;
      if (!svg || svg.nodeName.toLowerCase() !== "svg" || doc.getElementsByTagName("parsererror").length) return null;
      var node = document.importNode(svg, true);
      node.setAttribute("aria-hidden", "true");
      node.setAttribute("focusable", "false");
      return node;
    } catch (e) {
      return null;
    }
  }

  function injectStyle() {
    if (document.getElementById("konsent-widget-style")) return;
    var css = [
      ".konsent-root{box-sizing:border-box;max-width:34rem;margin:1rem 0;padding:1.25rem;border:1px solid #c9ced6;border-radius:.75rem;background:#fff;color:#1f2328;font:inherit;font-size:1rem;line-height:1.5;text-align:left}",
      ".konsent-root *,.konsent-root *::before,.konsent-root *::after{box-sizing:inherit}",
      ".konsent-root .konsent-head{display:flex;align-items:flex-start;justify-content:space-between;gap:1rem;margin-bottom:.5rem}",
      ".konsent-root .konsent-title{margin:0;font-size:1.2rem;line-height:1.3;color:inherit}",
      ".konsent-root .konsent-lang{display:flex;gap:.25rem;flex:none}",
      ".konsent-root .konsent-lang-btn{font:inherit;font-size:.85rem;padding:.15rem .5rem;border:1px solid #6b7280;border-radius:.35rem;background:#fff;color:#1f2328;cursor:pointer}",
      ".konsent-root .konsent-lang-btn[aria-pressed=true]{background:#1f2328;color:#fff;border-color:#1f2328}",
      ".konsent-root .konsent-intro{margin:0 0 .75rem}",
      ".konsent-root .konsent-fieldset{border:0;margin:0 0 .75rem;padding:0;min-width:0}",
      ".konsent-root .konsent-legend{font-weight:600;padding:0;margin-bottom:.25rem}",
      ".konsent-root .konsent-option{display:flex;align-items:flex-start;gap:.5rem;padding:.2rem 0}",
      ".konsent-root .konsent-input{margin:.3rem 0 0;width:1.1rem;height:1.1rem;flex:none;accent-color:#1d4ed8}",
      ".konsent-root .konsent-label{cursor:pointer}",
      ".konsent-root .konsent-topic-name{display:block;font-weight:500}",
      ".konsent-root .konsent-topic-desc{display:block;font-size:.875rem;color:#4b5563}",
      ".konsent-root .konsent-consent-box{margin:.75rem 0;padding:.75rem;background:#f3f4f6;border-radius:.5rem;font-size:.9rem}",
      ".konsent-root .konsent-consent-box p{margin:0 0 .5rem}",
      ".konsent-root .konsent-consent-box p:last-child{margin:0}",
      ".konsent-root .konsent-consent{white-space:pre-line}",
      ".konsent-root .konsent-link,.konsent-root a{color:#1d4ed8;text-decoration:underline}",
      ".konsent-root .konsent-error{margin:.25rem 0 .5rem;color:#b42318;font-weight:600}",
      ".konsent-root .konsent-error:empty{display:none}",
      ".konsent-root .konsent-submit,.konsent-root .konsent-deeplink{display:inline-block;font:inherit;font-weight:600;padding:.6rem 1.2rem;border:0;border-radius:.5rem;background:#1d4ed8;color:#fff;text-decoration:none;cursor:pointer}",
      ".konsent-root .konsent-submit[aria-disabled=true]{opacity:.7;cursor:progress}",
      ".konsent-root .konsent-secondary{font:inherit;padding:.4rem .9rem;border:1px solid #6b7280;border-radius:.5rem;background:#fff;color:#1f2328;cursor:pointer}",
      ".konsent-root .konsent-result-title{margin:.25rem 0 .5rem;font-size:1.1rem}",
      ".konsent-root .konsent-qr{margin:.75rem 0;line-height:0}",
      ".konsent-root .konsent-qr svg{width:12rem;height:auto;max-width:100%}",
      ".konsent-root .konsent-code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:1.1rem;letter-spacing:.05em;padding:.1rem .35rem;background:#f3f4f6;border-radius:.25rem}",
      ".konsent-root .konsent-small{font-size:.875rem;color:#4b5563;margin:.25rem 0}",
      ".konsent-root :focus-visible{outline:3px solid #f59e0b;outline-offset:2px}",
      ".konsent-root .konsent-result-title:focus-visible{outline-offset:4px}"
    ].join("\n");
    var style = document.createElement("style");
    style.id = "konsent-widget-style";
    style.textContent = css;
    (document.head || document.documentElement).appendChild(style);
  }
})();
