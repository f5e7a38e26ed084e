// Operational intelligence: exceptions over time by kind, revenue at risk by customer /
// supplier / warehouse, backlog and cycle time, recommendation acceptance and override
// rates. Each bar drills down to the cases behind it in the queue (by the case ids the
// server lists for it, or by kind and the dates of the bar). Every request is bounded
// (days ≤ 730, limit ≤ 100).

import { ApiError, get } from "./api.js";
import { h, label, money, mount } from "./dom.js";
import { asTable, barsH, legend, lines, sharesH, stacked } from "./charts.js";

export async function render(root, ctx, params) {
  const days = clampInt(params.get("days"), 1, 730, 90);
  const bucket = params.get("bucket") === "day" ? "day" : "week";
  const by = ["customer", "supplier", "warehouse"].includes(params.get("by")) ? params.get("by") : "customer";

  const trends = card("trends-title", "Exceptions over time, by kind");
  const risk = card("risk-title", "Revenue at risk");
  const backlog = card("backlog-title", "Backlog and cycle time");
  const recs = card("recs-title", "Recommendations: accepted and overridden");

  const period = h(
    "select",
    { id: "i-days", onchange: () => go({ days: period.value }) },
    [30, 90, 180, 365].map((d) => h("option", { value: d, selected: d === days }, `Last ${d} days`)),
  );
  const bucketSel = h(
    "select",
    { id: "i-bucket", onchange: () => go({ bucket: bucketSel.value }) },
    ["week", "day"].map((b) => h("option", { value: b, selected: b === bucket }, `By ${b}`)),
  );
  mount(
    root,
    h(
      "section",
      { "aria-labelledby": "intel-title" },
      h(
        "div",
        { class: "page-head" },
        h("h1", { id: "intel-title" }, "Operational intelligence"),
        h("div", { class: "row" }, h("label", { for: "i-days", class: "sr-only" }, "Period"), period, h("label", { for: "i-bucket", class: "sr-only" }, "Bucket"), bucketSel),
      ),
      h("div", { class: "dash" }, trends.el, risk.el, backlog.el, recs.el),
    ),
  );

  function go(change) {
    const p = new URLSearchParams({ days, bucket, by, ...change });
    ctx.nav(`#/intel?${p}`);
  }

  await Promise.all([
    guard(trends, async () => {
      const r = await get("/intelligence/trends", { by: "kind", days, bucket });
      const dates = [...new Set(r.series.flatMap((sr) => sr.points.map((p) => p.date)))].sort();
      const series = r.series.map((sr) => {
        const m = new Map(sr.points.map((p) => [p.date, p.count]));
        return { key: sr.key, label: !sr.label || sr.label === sr.key ? label(sr.key) : sr.label, values: dates.map((d) => m.get(d) || 0) };
      });
      const span = bucket === "week" ? 7 : 1;
      const hrefFor = (kind, i) =>
        `#/queue?${new URLSearchParams({ status: "all", kind, opened_from: dates[i], opened_to: addDays(dates[i], span - 1) })}`;
      if (!dates.length) return h("p", { class: "empty" }, "No exceptions in this period.");
      return [
        stacked(dates, series, { hrefFor, caption: "Exceptions per " + bucket + " by kind" }),
        legend(series, { hrefFor: (kind) => `#/queue?${new URLSearchParams({ kind })}` }),
        h("p", { class: "muted small" }, "Counts include past exceptions from the source's history; a bar opens the cases this server holds for it."),
        asTable(["Kind", ...dates], series.map((sr) => [sr.label, ...sr.values])),
      ];
    }),
    guard(risk, async () => {
      const r = await get("/intelligence/at-risk", { by, limit: 10 });
      const tabs = h(
        "div",
        { class: "tabs", role: "group", "aria-label": "Group by" },
        ["customer", "supplier", "warehouse"].map((b) => h("button", { class: "tab", "aria-pressed": String(b === by), onclick: () => go({ by: b }) }, label(b))),
      );
      const rows = r.rows.map((x) => ({
        label: x.label || x.key,
        value: Number(x.revenue_at_risk),
        href: x.case_ids?.length ? `#/queue?${new URLSearchParams({ status: "all", ids: x.case_ids.join(","), drill: `revenue at risk of ${by} ${x.label || x.key}` })}` : null,
        title: `${x.label || x.key}: ${money(x.revenue_at_risk)} ${r.currency} at risk in ${x.cases} cases (margin ${money(x.margin_at_risk)})`,
      }));
      return [
        tabs,
        rows.length ? barsH(rows, { fmt: money, caption: `Revenue at risk by ${by}` }) : h("p", { class: "empty" }, "Nothing at risk this month."),
        h("p", { class: "muted small" }, `${r.currency}; top ${rows.length} by revenue at risk. Select a bar for its cases.`),
        asTable([label(by), `Revenue at risk (${r.currency})`, "Margin at risk", "Cases"], r.rows.map((x) => [x.label || x.key, money(x.revenue_at_risk), money(x.margin_at_risk), x.cases])),
      ];
    }),
    guard(backlog, async () => {
      const r = await get("/intelligence/backlog");
      const dates = r.daily.map((d) => d.date);
      const open = r.open_by_kind
        .slice()
        .sort((a, b) => b.count - a.count)
        .map((k, i) => ({ label: label(k.kind), value: k.count, href: `#/queue?${new URLSearchParams({ kind: k.kind })}`, cls: `c${i % 10}` }));
      const cycle = r.cycle_time_hours;
      return [
        h("h3", {}, "Open now, by kind"),
        open.length ? barsH(open, { caption: "Open cases by kind" }) : h("p", { class: "empty" }, "No open cases."),
        dates.length
          ? [
              h("h3", {}, "Opened, closed and open per day"),
              lines(dates, [
                { label: "open", values: r.daily.map((d) => d.open), cls: "c0" },
                { label: "opened", values: r.daily.map((d) => d.opened), cls: "c1" },
                { label: "closed", values: r.daily.map((d) => d.closed), cls: "c2" },
              ], { caption: "Backlog per day" }),
              legend([{ label: "open", cls: "c0" }, { label: "opened", cls: "c1" }, { label: "closed", cls: "c2" }]),
            ]
          : null,
        h("h3", {}, "Cycle time (hours from detection to close)"),
        cycle.length
          ? h(
              "table",
              { class: "compact" },
              h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Kind"), h("th", { scope: "col", class: "num" }, "p50"), h("th", { scope: "col", class: "num" }, "p90"))),
              h("tbody", {}, cycle.map((c) => h("tr", {}, h("td", {}, label(c.kind)), h("td", { class: "num" }, fmtH(c.p50)), h("td", { class: "num" }, fmtH(c.p90))))),
            )
          : h("p", { class: "empty" }, "No closed cases yet."),
      ];
    }),
    guard(recs, async () => {
      const r = await get("/intelligence/recommendations");
      if (!r.rows.length) return h("p", { class: "empty" }, "No recommendations decided yet.");
      const rows = r.rows.map((x) => ({
        label: label(x.kind),
        total: x.proposed,
        href: `#/queue?${new URLSearchParams({ status: "all", kind: x.kind })}`,
        parts: [
          { value: x.accepted, cls: "c2", name: "accepted" },
          { value: x.overridden, cls: "c3", name: "overridden" },
          { value: x.dismissed, cls: "c8", name: "dismissed" },
        ],
        note: `${Math.round(pct(x.acceptance_rate))}% acc. · ${Math.round(pct(x.override_rate))}% over.`,
      }));
      const parts = [
        { label: "accepted (top option approved)", cls: "c2" },
        { label: "overridden (another option, or rejected)", cls: "c3" },
        { label: "dismissed", cls: "c8" },
        { label: "not decided yet", cls: "rest" },
      ];
      return [
        sharesH(rows, { caption: "What happened to the recommendations, by kind" }),
        legend(parts),
        asTable(["Kind", "Proposed", "Accepted", "Overridden", "Dismissed", "Acceptance", "Override"], r.rows.map((x) => [label(x.kind), x.proposed, x.accepted, x.overridden, x.dismissed, `${Math.round(pct(x.acceptance_rate))}%`, `${Math.round(pct(x.override_rate))}%`])),
      ];
    }),
  ]);
  performance.mark("oc:intel-rendered");
}

function card(id, title) {
  const body = h("div", { class: "card-body", "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  return { el: h("article", { class: "card chart-card", "aria-labelledby": id }, h("h2", { id }, title), body), body };
}

async function guard(c, fn) {
  try {
    mount(c.body, await fn());
  } catch (e) {
    mount(
      c.body,
      h(
        "p",
        { class: "empty" },
        e instanceof ApiError && e.status === 404 ? "This server does not offer this chart yet." : `Could not load: ${e.message}`,
      ),
    );
  }
  c.body.removeAttribute("aria-busy");
}

function pct(v) {
  const n = Number(v) || 0;
  return n <= 1 ? n * 100 : n;
}

function fmtH(v) {
  const n = Number(v);
  if (Number.isNaN(n)) return "–";
  return n >= 48 ? `${(n / 24).toFixed(1)} d` : `${n.toFixed(1)} h`;
}

function clampInt(v, lo, hi, dflt) {
  const n = Number.parseInt(v ?? "", 10);
  return Number.isNaN(n) ? dflt : Math.min(hi, Math.max(lo, n));
}

function addDays(date, n) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}
