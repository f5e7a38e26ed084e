// Hand-written SVG charts: horizontal bars, stacked columns over time, and lines. Every
// bar that leads somewhere is an SVG link (focusable, Enter follows it) with a title for
// the tooltip and the screen reader. Colours come from CSS classes (.c0 … .c9), so the
// strict style policy holds (no inline styles). Each chart can also be read as a table.

import { h, s, compact } from "./dom.js";

const W = 640;

function nice(max) {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function link(href, title, ...children) {
  if (!href) return s("g", { role: "img", "aria-label": title }, s("title", {}, title), ...children);
  return s("a", { href, "aria-label": title, class: "bar-link" }, s("title", {}, title), ...children);
}

/** Horizontal bars: rows [{label, value, href, title, cls}], value formatted by `fmt`. */
export function barsH(rows, { fmt = compact, axis = compact, labelWidth = 190, caption } = {}) {
  const rowH = 26;
  const H = Math.max(1, rows.length) * rowH + 24;
  const max = nice(Math.max(0, ...rows.map((r) => r.value)));
  const plotW = W - labelWidth - 70;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "group", "aria-label": caption || "bar chart" });
  for (let t = 0; t <= 4; t++) {
    const x = labelWidth + (plotW * t) / 4;
    svg.append(s("line", { x1: x, x2: x, y1: 0, y2: H - 18, class: "grid" }), s("text", { x, y: H - 4, class: "axis", "text-anchor": "middle" }, axis((max * t) / 4)));
  }
  const chars = Math.floor(labelWidth / 7.4);
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    const w = Math.max(r.value > 0 ? 2 : 0, (plotW * r.value) / max);
    svg.append(
      s("text", { x: labelWidth - 8, y: y + 15, class: "label", "text-anchor": "end" }, truncate(r.label, chars)),
      link(
        r.href,
        r.title || `${r.label}: ${fmt(r.value)}`,
        s("rect", { x: labelWidth, y, width: w, height: rowH - 8, rx: 2, class: `bar ${r.cls || "c0"}` }),
        s("rect", { x: labelWidth, y, width: plotW, height: rowH - 8, class: "hit" }),
      ),
      s("text", { x: labelWidth + w + 6, y: y + 15, class: "value" }, fmt(r.value)),
    );
  });
  return svg;
}

/**
 * Shares as horizontal stacked bars, one row per item: rows [{label, total, parts:
 * [{value, cls, name}], href, note}] — each part's width is value / total; the rest of the
 * row is the undecided remainder.
 */
export function sharesH(rows, { labelWidth = 170, caption } = {}) {
  const rowH = 28;
  const H = Math.max(1, rows.length) * rowH + 4;
  const noteW = 150;
  const plotW = W - labelWidth - noteW;
  const chars = Math.floor(labelWidth / 7.4);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "group", "aria-label": caption || "shares" });
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    const g = [s("rect", { x: labelWidth, y, width: plotW, height: rowH - 10, rx: 2, class: "rest" })];
    let x = labelWidth;
    for (const p of r.parts) {
      const w = r.total > 0 ? (plotW * p.value) / r.total : 0;
      if (w > 0) g.push(s("rect", { x, y, width: w, height: rowH - 10, class: `bar ${p.cls}` }));
      x += w;
    }
    const title = `${r.label}: ${r.parts.map((p) => `${p.value} ${p.name}`).join(", ")} of ${r.total}`;
    svg.append(
      s("text", { x: labelWidth - 8, y: y + 14, class: "label", "text-anchor": "end" }, truncate(r.label, chars)),
      link(r.href, title, ...g),
      s("text", { x: labelWidth + plotW + 8, y: y + 14, class: "value" }, r.note || ""),
    );
  });
  return svg;
}

/** Stacked columns over dates: series [{key, label, values[]}] aligned with `dates`. */
export function stacked(dates, series, { hrefFor, fmt = compact, caption } = {}) {
  const H = 240;
  const left = 44;
  const bottom = 26;
  const plotW = W - left - 8;
  const plotH = H - bottom - 8;
  const totals = dates.map((_, i) => series.reduce((a, sr) => a + (sr.values[i] || 0), 0));
  const max = nice(Math.max(0, ...totals));
  const bw = plotW / Math.max(1, dates.length);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "group", "aria-label": caption || "stacked chart" });
  for (let t = 0; t <= 4; t++) {
    const y = 8 + plotH - (plotH * t) / 4;
    svg.append(s("line", { x1: left, x2: W - 8, y1: y, y2: y, class: "grid" }), s("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, fmt((max * t) / 4)));
  }
  const every = Math.ceil(dates.length / 8);
  dates.forEach((d, i) => {
    const x = left + i * bw;
    let y = 8 + plotH;
    series.forEach((sr, k) => {
      const v = sr.values[i] || 0;
      if (!v) return;
      const hgt = (plotH * v) / max;
      y -= hgt;
      svg.append(
        link(hrefFor?.(sr.key, i), `${sr.label}, ${d}: ${fmt(v)}`, s("rect", { x: x + 1, y, width: Math.max(1, bw - 2), height: Math.max(0.5, hgt), class: `bar c${k % 10}` })),
      );
    });
    if (i % every === 0) svg.append(s("text", { x: x + bw / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, d.slice(5)));
  });
  return svg;
}

/** Lines over dates: series [{label, values[], cls}]. */
export function lines(dates, series, { fmt = compact, caption } = {}) {
  const H = 200;
  const left = 44;
  const bottom = 26;
  const plotW = W - left - 8;
  const plotH = H - bottom - 8;
  const max = nice(Math.max(0, ...series.flatMap((sr) => sr.values)));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": caption || "line chart" });
  for (let t = 0; t <= 4; t++) {
    const y = 8 + plotH - (plotH * t) / 4;
    svg.append(s("line", { x1: left, x2: W - 8, y1: y, y2: y, class: "grid" }), s("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, fmt((max * t) / 4)));
  }
  const step = plotW / Math.max(1, dates.length - 1);
  const every = Math.ceil(dates.length / 8);
  dates.forEach((d, i) => {
    if (i % every === 0) svg.append(s("text", { x: left + i * step, y: H - 8, class: "axis", "text-anchor": "middle" }, d.slice(5)));
  });
  series.forEach((sr, k) => {
    const pts = sr.values.map((v, i) => `${(left + i * step).toFixed(1)},${(8 + plotH - (plotH * v) / max).toFixed(1)}`);
    svg.append(s("polyline", { points: pts.join(" "), class: `line ${sr.cls || `c${k}`}` }, s("title", {}, sr.label)));
  });
  return svg;
}

/** A legend for series (same colour classes as the chart). */
export function legend(series, { hrefFor } = {}) {
  return h(
    "ul",
    { class: "legend" },
    series.map((sr, k) =>
      h("li", {}, h("span", { class: `swatch ${sr.cls || `c${k % 10}`}`, "aria-hidden": "true" }), hrefFor ? h("a", { href: hrefFor(sr.key) }, sr.label) : sr.label),
    ),
  );
}

/** The chart's numbers as a table, folded away. */
export function asTable(head, rows) {
  return h(
    "details",
    { class: "as-table" },
    h("summary", {}, "Show as a table"),
    h(
      "div",
      { class: "table-wrap" },
      h("table", {}, h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))),
    ),
  );
}

function truncate(t, n) {
  const x = String(t ?? "");
  return x.length > n ? `${x.slice(0, n - 1)}…` : x;
}
