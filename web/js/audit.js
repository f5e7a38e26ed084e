// The audit viewer: the hash-chained log, newest first, searchable by event kind (exact
// or a prefix such as `approval.`), actor, case and conversation, 50 rows a page (older
// pages by sequence cursor), with the chain's verification status on top.

import { get } from "./api.js";
import { h, mount, time } from "./dom.js";

const PAGE = 50;

export async function render(root, ctx, params) {
  const fields = {
    kind: h("input", { id: "a-kind", type: "search", placeholder: "case. or approval.decided", value: params.get("kind") || "", maxlength: 64 }),
    actor: h("input", { id: "a-actor", type: "search", placeholder: "name", value: params.get("actor") || "", maxlength: 64 }),
    case_id: h("input", { id: "a-case", type: "search", placeholder: "EX-…", value: params.get("case_id") || "", maxlength: 64 }),
    conversation_id: h("input", { id: "a-conv", type: "search", placeholder: "conversation id", value: params.get("conversation_id") || "", maxlength: 64 }),
  };
  const verify = h("div", { class: "verify card", id: "verify", "aria-live": "polite" }, "Verifying the chain…");
  const tbody = h("tbody", { id: "audit-rows" });
  const more = h("button", { class: "btn", id: "audit-more", hidden: true }, "Older entries");
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Search the audit log" },
    h("div", { class: "field" }, h("label", { for: "a-kind" }, "Event kind"), fields.kind),
    h("div", { class: "field" }, h("label", { for: "a-actor" }, "Actor"), fields.actor),
    h("div", { class: "field" }, h("label", { for: "a-case" }, "Case"), fields.case_id),
    h("div", { class: "field" }, h("label", { for: "a-conv" }, "Conversation"), fields.conversation_id),
    h("div", { class: "field end" }, h("button", { class: "btn primary", type: "submit" }, "Search")),
  );
  mount(
    root,
    h(
      "section",
      { "aria-labelledby": "audit-title" },
      h("div", { class: "page-head" }, h("h1", { id: "audit-title" }, "Audit log")),
      verify,
      form,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "audit" },
          h("thead", {}, h("tr", {}, ["#", "When", "Event", "Actor", "Case", "Details"].map((t) => h("th", { scope: "col" }, t)))),
          tbody,
        ),
      ),
      h("div", { class: "pager" }, more),
    ),
  );

  let cursor = null;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, el] of Object.entries(fields)) if (el.value.trim()) p.set(k, el.value.trim());
    history.replaceState(null, "", `#/audit${p.size ? `?${p}` : ""}`);
    load(true);
  });
  more.addEventListener("click", () => load(false));

  async function load(reset) {
    if (reset) {
      cursor = null;
      tbody.replaceChildren();
    }
    const q = { limit: PAGE, after_seq: cursor };
    for (const [k, el] of Object.entries(fields)) q[k] = el.value.trim();
    const r = await get("/audit", q);
    if (reset && !r.items.length) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No entries match.")));
    for (const ev of r.items) {
      tbody.append(
        h(
          "tr",
          {},
          h("td", { class: "num" }, ev.seq),
          h("td", { class: "nowrap" }, time(ev.at)),
          h("td", {}, h("code", {}, ev.kind)),
          h("td", {}, ev.actor),
          h("td", {}, ev.case_id ? h("a", { href: `#/queue?status=all&case=${encodeURIComponent(ev.case_id)}` }, ev.case_id) : "–"),
          h("td", { class: "details" }, details(ev)),
        ),
      );
    }
    cursor = r.items.length ? r.items[r.items.length - 1].seq : cursor;
    more.hidden = r.items.length < PAGE;
  }

  async function check() {
    try {
      const v = await get("/audit/verify");
      mount(
        verify,
        v.ok
          ? h("p", { class: "ok" }, h("strong", {}, "Chain intact."), ` All ${v.rows.toLocaleString("en")} rows verified: every hash matches and links to the one before.`)
          : h("p", { class: "bad" }, h("strong", {}, "Chain BROKEN"), ` at row ${v.first_bad.seq}: ${v.first_bad.problem}.`),
      );
      verify.className = `verify card ${v.ok ? "ok" : "bad"}`;
    } catch (e) {
      mount(verify, h("p", { class: "bad" }, `Could not verify: ${e.message}`));
    }
  }

  await Promise.all([load(true), check()]);
}

function details(ev) {
  const text = JSON.stringify(ev.payload);
  const extra = [];
  if (ev.model) extra.push(`model ${ev.model}`);
  if (ev.prompt_tokens != null) extra.push(`${ev.prompt_tokens}+${ev.completion_tokens} tokens`);
  if (ev.latency_ms != null) extra.push(`${ev.latency_ms} ms`);
  return h(
    "details",
    {},
    h("summary", {}, text.length > 90 ? `${text.slice(0, 90)}…` : text, extra.length ? ` (${extra.join(", ")})` : ""),
    h("pre", {}, JSON.stringify(ev.payload, null, 2)),
    h("p", { class: "muted small mono" }, `hash ${ev.hash.slice(0, 16)}… ← prev ${ev.prev_hash.slice(0, 16)}…`),
  );
}
