// Small DOM and formatting helpers. Everything the app renders goes through `h`, which
// sets text with textContent (never innerHTML), so data from the server can't inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value" && "value" in el) el.value = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An HTML element: h("button", {class: "x", onclick: f}, "text", child…). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const money0 = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const money2 = new Intl.NumberFormat("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** 20570.54 → "20,571"; small amounts keep cents. */
export function money(v) {
  // A value the user's role may not see arrives as "[withheld: … — not visible to …]".
  if (typeof v === "string" && v.startsWith("[withheld")) return v;
  const n = typeof v === "string" ? Number(v) : v;
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return Math.abs(n) >= 1000 ? money0.format(n) : money2.format(n);
}

/** 1234567 → "1.2M". */
export function compact(n) {
  return new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 }).format(n);
}

/** Unix microseconds → "2026-11-26 21:36". */
export function time(us) {
  if (!us) return "–";
  const d = new Date(us / 1000);
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Unix microseconds → "3 h ago". */
export function ago(us) {
  if (!us) return "–";
  const s = Math.round((Date.now() - us / 1000) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** "stock_shortage" → "Stock shortage". */
export function label(k) {
  if (!k) return "";
  const t = String(k).replaceAll("_", " ");
  return t[0].toUpperCase() + t.slice(1);
}

/** A severity pill. */
export function severity(sev) {
  return h("span", { class: `pill sev-${sev}` }, sev);
}

/** A status pill. */
export function status(st) {
  return h("span", { class: `pill st-${st}` }, label(st));
}

/** Show a short message at the bottom of the screen (announced to screen readers). */
export function toast(msg, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const t = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, msg);
  box.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

/** Debounce a function. */
export function debounce(fn, ms) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

/** A modal dialog asking for a line of text; resolves to the text or null. */
export function ask(title, { label: fieldLabel, placeholder = "", confirm = "OK", required = true, value = "", rows = 3, maxlength = 2000, hint = "" } = {}) {
  return new Promise((resolve) => {
    const input = h("textarea", { id: "ask-input", rows, placeholder, maxlength });
    input.value = value;
    const err = h("p", { class: "field-error", "aria-live": "polite" });
    const dlg = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "ask-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "ask-title" }, title),
        h("label", { for: "ask-input" }, fieldLabel || "Reason"),
        hint ? h("p", { class: "muted small" }, hint) : null,
        input,
        err,
        h(
          "div",
          { class: "row end" },
          h("button", { type: "button", class: "btn", onclick: () => close(null) }, "Cancel"),
          h("button", { type: "submit", class: "btn primary", value: "ok" }, confirm),
        ),
      ),
    );
    function close(v) {
      dlg.close();
      dlg.remove();
      resolve(v);
    }
    dlg.addEventListener("cancel", (e) => {
      e.preventDefault();
      close(null);
    });
    dlg.querySelector("form").addEventListener("submit", (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (required && !v) {
        err.textContent = "Please write a few words.";
        input.focus();
        return;
      }
      close(v);
    });
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}
