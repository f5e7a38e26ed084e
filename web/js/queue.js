// The exception queue: ranked cases, filters (kind, owner, warehouse, customer tier,
// severity, customer, status), paging (50 a page; every request is bounded), and the
// case side panel. The filters live in the URL (#/queue?kind=…&case=…), so a chart's
// drill-down and the back button land on the same view.

import { get, post } from "./api.js";
import { ago, debounce, h, label, money, mount, severity, status, toast } from "./dom.js";
import { renderCase } from "./case.js";

const PAGE = 50;
const FILTERS = ["kind", "owner", "warehouse", "tier", "severity"];
const FILTER_LABELS = { kind: "Kind", owner: "Owner", warehouse: "Warehouse", tier: "Customer tier", severity: "Severity" };
const SEVERITY_ORDER = ["critical", "high", "medium", "low"];
const KEYS = [...FILTERS, "status", "customer", "sort", "page", "ids", "opened_from", "opened_to", "drill", "case"];

/** The request for the first page of the queue as the URL's filters say. */
function pageQuery(state) {
  const q = {
    status: state.status,
    customer: state.customer,
    sort: state.sort,
    ids: state.ids,
    opened_from: state.opened_from,
    opened_to: state.opened_to,
    limit: PAGE,
    offset: Math.max(0, Number(state.page || 0)) * PAGE,
  };
  for (const f of FILTERS) q[f] = state[f];
  return q;
}

let early = null;

/**
 * Start loading the first page while the app is still signing in (GET /api/me runs in
 * parallel), so the queue paints one round trip sooner. `render` takes it over.
 */
export function prefetch(params) {
  const q = pageQuery(Object.fromEntries(KEYS.map((k) => [k, params.get(k) || ""])));
  const promise = get("/exceptions", q);
  promise.catch(() => {});
  early = { key: JSON.stringify(q), promise };
}

export async function render(root, ctx, params) {
  const state = Object.fromEntries(KEYS.map((k) => [k, params.get(k) || ""]));
  let controller = null;
  let selectedRow = null;

  const selects = {};
  for (const f of FILTERS) {
    selects[f] = h(
      "select",
      { id: `f-${f}`, name: f, onchange: () => setFilter(f, selects[f].value) },
      h("option", { value: "" }, "All"),
      state[f] ? h("option", { value: state[f], selected: true }, label(state[f])) : null,
    );
  }
  // A fixed-choice filter: [value, text] pairs; "" is the default.
  const choice = (key, options) => {
    const sel = h(
      "select",
      { id: `f-${key}`, onchange: () => setFilter(key, sel.value) },
      options.map(([v, t]) => h("option", { value: v, selected: state[key] === v }, t)),
    );
    return sel;
  };
  const statusSel = choice("status", [
    ["", "Active (open + acknowledged)"],
    ["open", "Open"],
    ["acknowledged", "Acknowledged"],
    ["resolved", "Resolved"],
    ["dismissed", "Dismissed"],
    ["all", "All"],
  ]);
  const sortSel = choice("sort", [
    ["", "Rank (score)"],
    ["revenue", "Revenue at risk"],
    ["oldest", "Oldest first"],
    ["updated", "Recently changed"],
  ]);
  const customer = h("input", {
    id: "f-customer",
    type: "search",
    placeholder: "Customer name",
    value: state.customer,
    maxlength: 128,
    oninput: debounce(() => setFilter("customer", customer.value.trim()), 250),
  });

  const drill = h("div", { class: "drill", hidden: !(state.ids || state.opened_from) });
  const count = h("p", { class: "count", id: "queue-count", "aria-live": "polite" }, "\u00a0");
  const tbody = h("tbody", { id: "queue-rows" });
  const table = h(
    "table",
    { class: "queue", "aria-describedby": "queue-count" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col", class: "num" }, "Score"),
        h("th", { scope: "col" }, "Exception"),
        h("th", { scope: "col", class: "c-customer" }, "Customer"),
        h("th", { scope: "col", class: "c-wh" }, "WH"),
        h("th", { scope: "col", class: "num" }, "At risk"),
        h("th", { scope: "col", class: "c-owner" }, "Owner"),
        h("th", { scope: "col", class: "c-age" }, "Seen"),
      ),
    ),
    tbody,
  );
  const pager = h("nav", { class: "pager", "aria-label": "Pages of the queue" });
  const panel = h("aside", { class: "panel", id: "case-panel", "aria-label": "Case details", hidden: true });

  const scanBtn = ctx.can("run_scan")
    ? h("button", { class: "btn small", id: "scan-now", onclick: scanNow }, "Scan now")
    : null;

  mount(
    root,
    h(
      "div",
      { class: "queue-layout" },
      h(
        "section",
        { class: "queue-main", "aria-labelledby": "queue-title" },
        h("div", { class: "page-head" }, h("h1", { id: "queue-title" }, "Exception queue"), count, scanBtn),
        h(
          "form",
          { class: "filters", role: "search", "aria-label": "Filter the queue", onsubmit: (e) => e.preventDefault() },
          FILTERS.map((f) => h("div", { class: "field" }, h("label", { for: `f-${f}` }, FILTER_LABELS[f]), selects[f])),
          h("div", { class: "field" }, h("label", { for: "f-status" }, "Status"), statusSel),
          h("div", { class: "field grow" }, h("label", { for: "f-customer" }, "Customer"), customer),
          h("div", { class: "field" }, h("label", { for: "f-sort" }, "Sort by"), sortSel),
        ),
        drill,
        h("div", { class: "table-wrap" }, table),
        pager,
      ),
      panel,
    ),
  );

  function syncUrl() {
    const p = new URLSearchParams();
    for (const k of KEYS) if (state[k]) p.set(k, state[k]);
    const t = p.toString();
    history.replaceState(null, "", `#/queue${t ? `?${t}` : ""}`);
  }

  function setFilter(k, v) {
    state[k] = v;
    state.page = "";
    syncUrl();
    load();
  }

  function renderDrill() {
    if (!(state.ids || state.opened_from || state.opened_to)) {
      drill.hidden = true;
      return;
    }
    const parts = [];
    if (state.ids) parts.push(`${state.ids.split(",").length} cases behind a chart bar`);
    if (state.drill) parts.push(state.drill.slice(0, 120));
    if (state.opened_from || state.opened_to)
      parts.push(`first seen ${state.opened_from || "…"} to ${state.opened_to || "…"}`);
    mount(
      drill,
      h("span", {}, `Showing ${parts.join(", ")}.`),
      h(
        "button",
        {
          class: "btn small",
          type: "button",
          onclick: () => {
            state.ids = state.opened_from = state.opened_to = state.drill = "";
            setFilter("status", "");
            statusSel.value = "";
          },
        },
        "Show the whole queue",
      ),
    );
    drill.hidden = false;
  }

  async function load() {
    renderDrill();
    controller?.abort();
    controller = new AbortController();
    const page = Math.max(0, Number(state.page || 0));
    const q = pageQuery(state);
    table.setAttribute("aria-busy", "true");
    const pre = early && early.key === JSON.stringify(q) ? early.promise : null;
    early = null;
    let r;
    try {
      r = await (pre || get("/exceptions", q, { signal: controller.signal }));
    } catch (e) {
      if (e.name === "AbortError") return;
      throw e;
    }
    table.removeAttribute("aria-busy");
    rows(r.items);
    count.textContent = `${r.total.toLocaleString("en")} case${r.total === 1 ? "" : "s"}`;
    paging(r.total, page);
    if (!performance.getEntriesByName("oc:queue-rendered").length) {
      performance.mark("oc:queue-rendered");
      // The frame after the rows are in the DOM is the first that shows them.
      requestAnimationFrame(() => setTimeout(() => performance.mark("oc:queue-painted"), 0));
    }
  }

  function rows(items) {
    if (!items.length) {
      mount(tbody, h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No cases match these filters.")));
      return;
    }
    mount(
      tbody,
      items.map((c) =>
        h(
          "tr",
          {
            dataset: { id: c.id },
            class: ["case-row", c.id === state.case && "selected"],
            onclick: (e) => {
              if (e.target.closest("a")) return;
              open(c.id);
            },
          },
          h("td", { class: "num" }, h("span", { class: `score sev-${c.severity}` }, c.score)),
          h(
            "td",
            { class: "c-title" },
            h(
              "a",
              {
                href: `#/queue?case=${encodeURIComponent(c.id)}`,
                class: "case-link",
                onclick: (e) => {
                  e.preventDefault();
                  open(c.id);
                },
                onkeydown: rowKeys,
              },
              c.title,
            ),
            h(
              "div",
              { class: "sub" },
              h("span", { class: "kind" }, label(c.kind)),
              " · ",
              c.order_ref,
              c.product ? ` · ${c.product}` : "",
              " ",
              severity(c.severity),
              c.status !== "open" ? [" ", status(c.status)] : null,
            ),
          ),
          h("td", { class: "c-customer" }, c.customer, " ", h("span", { class: `tier tier-${c.tier}`, title: `Tier ${c.tier}` }, c.tier)),
          h("td", { class: "c-wh" }, c.warehouse || "–"),
          h("td", { class: "num" }, money(c.revenue_at_risk)),
          h("td", { class: "c-owner" }, label(c.owner_role)),
          h("td", { class: "c-age" }, ago(c.first_seen)),
        ),
      ),
    );
  }

  // Arrow keys move between cases in the table; Enter opens (it is a link).
  function rowKeys(e) {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const links = [...tbody.querySelectorAll("a.case-link")];
    const i = links.indexOf(e.currentTarget);
    const next = links[i + (e.key === "ArrowDown" ? 1 : -1)];
    if (next) {
      e.preventDefault();
      next.focus();
    }
  }

  function paging(total, page) {
    const pages = Math.max(1, Math.ceil(total / PAGE));
    const go = (p) => {
      state.page = p ? String(p) : "";
      syncUrl();
      load();
      tbody.closest(".table-wrap").scrollTop = 0;
    };
    mount(
      pager,
      h("button", { class: "btn small", disabled: page <= 0, onclick: () => go(page - 1), "aria-label": "Previous page" }, "‹ Prev"),
      h("span", { class: "muted" }, `Page ${page + 1} of ${pages.toLocaleString("en")}`),
      h("button", { class: "btn small", disabled: page + 1 >= pages, onclick: () => go(page + 1), "aria-label": "Next page" }, "Next ›"),
    );
  }

  function open(id) {
    state.case = id;
    syncUrl();
    for (const tr of tbody.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    selectedRow = tbody.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
    selectedRow?.classList.add("selected");
    panel.hidden = false;
    renderCase(panel, ctx, id, { onChange: () => load(), onClose: closePanel });
  }

  function closePanel() {
    state.case = "";
    syncUrl();
    panel.hidden = true;
    selectedRow?.classList.remove("selected");
    selectedRow?.querySelector("a")?.focus();
  }
  // Escape closes the panel (unless a dialog inside it is open).
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !document.querySelector("dialog[open]")) closePanel();
  });

  async function facets() {
    const f = await get("/exceptions/facets");
    for (const k of FILTERS) {
      const cur = state[k];
      let values = f[k] || [];
      if (k === "severity") values = [...values].sort((a, b) => SEVERITY_ORDER.indexOf(a.value) - SEVERITY_ORDER.indexOf(b.value));
      mount(
        selects[k],
        h("option", { value: "" }, "All"),
        values.map((v) =>
          h("option", { value: v.value, selected: v.value === cur }, `${k === "tier" ? `Tier ${v.value}` : label(v.value)} (${v.count})`),
        ),
        cur && !values.some((v) => v.value === cur) ? h("option", { value: cur, selected: true }, `${label(cur)} (0)`) : null,
      );
    }
  }

  async function scanNow() {
    scanBtn.disabled = true;
    try {
      const r = await post("/scan");
      toast(`Scanned: ${r.scan.exceptions} exceptions, ${r.scan.merge.new} new, ${r.scan.merge.cleared} cleared.`);
      await Promise.all([load(), facets()]);
    } finally {
      scanBtn.disabled = false;
    }
  }

  const first = load();
  if (state.case) open(state.case);
  await first;
  // The menus' counts come after the rows: they never hold up the first paint.
  facets().catch(() => {});
  return () => controller?.abort();
}
