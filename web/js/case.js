// One case in the side panel: what happened and why (evidence with its source records),
// the impact, the recommended actions with their trade-offs, approvals and history; and
// the decisions the signed-in role may take (acknowledge, resolve with an outcome,
// dismiss, request an action, open a chat about it). Also the approval card, shared with
// the approvals inbox and the chat.

import { get, post } from "./api.js";
import { ask, h, label, money, mount, severity, status, time, toast } from "./dom.js";

let loading = 0;

export async function renderCase(panel, ctx, id, { onChange, onClose }) {
  const ticket = ++loading;
  panel.setAttribute("aria-busy", "true");
  mount(panel, h("div", { class: "panel-head" }, h("p", { class: "muted" }, "Loading case…")));
  let data;
  try {
    data = await get(`/cases/${encodeURIComponent(id)}`);
  } catch (e) {
    if (ticket !== loading) return;
    mount(panel, closeBar(onClose), h("p", { class: "empty error" }, e.message));
    panel.removeAttribute("aria-busy");
    return;
  }
  if (ticket !== loading) return;
  panel.removeAttribute("aria-busy");
  const c = data.case;
  const ex = c.exception || {};
  const active = c.status === "open" || c.status === "acknowledged";
  const decide = ctx.mayDecide(c) && active;
  const refresh = () => {
    renderCase(panel, ctx, id, { onChange, onClose });
    onChange?.();
    ctx.refreshBadge();
  };

  async function act(path, body, done) {
    try {
      await post(`/cases/${encodeURIComponent(id)}/${path}`, body);
      toast(done);
      refresh();
    } catch (e) {
      toast(e.message, "error");
    }
  }

  // Resolve and dismiss ask for the outcome in a dialog first.
  const closer = (verb, title, question, done, cls) =>
    h(
      "button",
      {
        class: cls,
        id: verb,
        onclick: async () => {
          const o = await ask(`${title} the case`, { label: question, confirm: title });
          if (o) act(verb, { outcome: o }, done);
        },
      },
      `${title}…`,
    );

  const actions = h(
    "div",
    { class: "row wrap", role: "group", "aria-label": "Decisions" },
    decide && c.status === "open"
      ? h("button", { class: "btn", id: "ack", onclick: () => act("acknowledge", {}, "Acknowledged: the case is yours.") }, "Acknowledge")
      : null,
    decide ? closer("resolve", "Resolve", "Outcome: what was done, and why", "Resolved.", "btn primary") : null,
    decide ? closer("dismiss", "Dismiss", "Why it needs no action", "Dismissed.", "btn") : null,
    h(
      "a",
      { class: "btn", id: "chat-about", href: `#/chat?case=${encodeURIComponent(c.id)}&order=${encodeURIComponent(c.order_ref)}` },
      "Ask the copilot",
    ),
  );
  if (active && !ctx.mayDecide(c))
    actions.append(h("p", { class: "muted small" }, `Only the ${label(c.owner_role).toLowerCase()} (or a manager) decides this case.`));

  const impact = ex.impact || {};
  mount(
    panel,
    closeBar(onClose),
    h(
      "div",
      { class: "panel-body" },
      h("p", { class: "eyebrow" }, label(c.kind), " · ", c.order_ref, ex.line ? ` line ${ex.line}` : ""),
      h("h2", { id: "case-title", tabindex: "-1" }, c.title),
      h("p", { class: "row wrap" }, severity(c.severity), status(c.status), h("span", { class: "muted" }, `score ${c.score}`),
        h("span", { class: "muted" }, `confidence ${Math.round((ex.confidence || 0) * 100)}%`)),
      c.outcome ? h("p", { class: "outcome" }, h("strong", {}, "Outcome: "), c.outcome, c.decided_by ? ` — ${c.decided_by}, ${time(c.decided_at)}` : "") : null,
      h(
        "dl",
        { class: "facts" },
        fact("Customer", `${c.customer} (tier ${c.tier})`),
        fact("Warehouse", c.warehouse || "–"),
        c.product ? fact("Product", c.product) : null,
        fact("Revenue at risk", money(impact.revenue_at_risk)),
        fact("Margin at risk", money(impact.margin_at_risk)),
        impact.hours_past_promise ? fact("Past the promise", `${impact.hours_past_promise} h`) : null,
        fact("Owner", label(c.owner_role)),
        ex.escalation ? fact("Escalates to", `${label(ex.escalation.to_role)} — ${ex.escalation.reason}`) : null,
        ex.related_orders?.length ? fact("Related orders", ex.related_orders.join(", ")) : null,
      ),
      actions,
      h("h3", {}, "Why: the evidence"),
      h(
        "ul",
        { class: "evidence" },
        (ex.evidence || []).map((e) =>
          h("li", {}, e.fact, " ", h("span", { class: "src", title: `${e.source.model} ${e.source.id}` }, sourceLabel(e.source))),
        ),
      ),
      h("p", { class: "muted small" }, `Rule ${ex.policy_rule || "–"} · policy ${c.policy_version}`),
      h("h3", {}, "Options"),
      (ex.recommendations || []).length
        ? h(
            "ol",
            { class: "recs" },
            ex.recommendations.map((r, i) =>
              h(
                "li",
                { class: "rec" },
                h("p", { class: "rec-head" }, h("strong", {}, r.summary), " ", h("span", { class: "tag" }, label(r.action))),
                r.tradeoffs?.length ? h("ul", { class: "tradeoffs" }, r.tradeoffs.map((t) => h("li", {}, t))) : null,
                h(
                  "p",
                  { class: "row wrap small" },
                  h("span", { class: "muted" }, `Approved by ${r.approver_roles.map(label).join(" or ")}`),
                  active && ctx.can("request_actions")
                    ? h(
                        "button",
                        {
                          class: "btn small",
                          dataset: { rec: i },
                          onclick: async (ev) => {
                            ev.currentTarget.disabled = true;
                            try {
                              await post(`/cases/${encodeURIComponent(id)}/actions`, { recommendation: i });
                              toast(`Requested: ${r.summary}. It waits for ${r.approver_roles.map(label).join(" or ")}.`);
                              refresh();
                            } catch (e) {
                              toast(e.message, "error");
                              ev.currentTarget.disabled = false;
                            }
                          },
                        },
                        "Request",
                      )
                    : null,
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No recommended action."),
      data.approvals.length ? [h("h3", {}, "Approval requests"), h("div", { class: "cards" }, data.approvals.map((a) => approvalCard(a, ctx, refresh)))] : null,
      h("h3", {}, "History"),
      data.history.length
        ? h(
            "ol",
            { class: "history" },
            data.history.map((ev) => h("li", {}, h("span", { class: "muted" }, time(ev.at)), " ", h("code", {}, ev.kind), " by ", ev.actor, historyNote(ev))),
          )
        : h("p", { class: "muted" }, "No decisions yet."),
    ),
  );
  panel.querySelector("#case-title")?.focus();
}

function closeBar(onClose) {
  return h(
    "div",
    { class: "panel-head" },
    h("button", { class: "btn small", id: "close-panel", "aria-label": "Close the case", onclick: () => onClose?.() }, "✕ Close"),
  );
}

function fact(k, v) {
  return [h("dt", {}, k), h("dd", {}, v)];
}

function sourceLabel(src) {
  return src.model === "policy" ? `policy ${src.reference}` : `${src.model} ${src.reference}`;
}

function historyNote(ev) {
  const p = ev.payload || {};
  if (p.outcome) return ` — “${p.outcome}”`;
  if (p.decision) return ` — ${p.decision}${p.reason ? `: “${p.reason}”` : ""}`;
  if (p.action?.action) return ` — ${label(p.action.action)}`;
  return "";
}

/** A human sentence for an action's parameters. */
export function describeAction(params) {
  if (!params) return "";
  const skip = new Set(["action"]);
  return Object.entries(params)
    .filter(([k, v]) => !skip.has(k) && v !== null && typeof v !== "object")
    .map(([k, v]) => `${label(k)}: ${v}`)
    .join(" · ");
}

/**
 * An approval request as a card: what would change, who asked, who may decide, and — for
 * a role the request names, while it is pending — Approve and Reject in place.
 */
export function approvalCard(a, ctx, onDecided) {
  const card = h("article", { class: `card approval st-${a.status}`, dataset: { approval: a.id }, "aria-label": `Approval request ${label(a.action)}` });
  const draw = (a) => {
    const pending = a.status === "pending";
    const mine = ctx.mayApprove(a);
    const decide = async (approve) => {
      let reason = null;
      if (!approve) {
        reason = await ask("Reject the request", { label: "Why it should not happen", confirm: "Reject" });
        if (reason === null) return;
      }
      for (const b of card.querySelectorAll("button")) b.disabled = true;
      try {
        const r = await post(`/approvals/${encodeURIComponent(a.id)}/${approve ? "approve" : "reject"}`, reason ? { reason } : {});
        toast(approve ? `Approved; ${r.approval.status === "executed" ? "executed" : r.approval.status}.` : "Rejected.");
        draw(r.approval);
        onDecided?.(r.approval);
      } catch (e) {
        toast(e.message, "error");
        for (const b of card.querySelectorAll("button")) b.disabled = false;
      }
    };
    mount(
      card,
      h("header", { class: "row wrap" }, h("strong", {}, label(a.action)), status(a.status), a.case_id ? h("a", { href: `#/queue?status=all&case=${encodeURIComponent(a.case_id)}`, class: "small" }, "case") : null),
      h("p", { class: "small" }, describeAction(a.params)),
      h(
        "p",
        { class: "muted small" },
        `Requested by ${a.requested_by} ${time(a.requested_at)} · decided by ${a.approver_roles.map(label).join(" or ")}`,
        pending ? ` · expires ${time(a.expires_at)}` : "",
      ),
      a.decided_by ? h("p", { class: "small" }, `${label(a.status)} by ${a.decided_by} ${time(a.decided_at)}${a.reason ? ` — “${a.reason}”` : ""}`) : null,
      a.result ? h("p", { class: "small result" }, "Result: ", typeof a.result === "object" ? describeAction(a.result) || JSON.stringify(a.result) : String(a.result)) : null,
      pending && mine
        ? h(
            "div",
            { class: "row" },
            h("button", { class: "btn primary small approve", onclick: () => decide(true) }, "Approve"),
            h("button", { class: "btn small reject", onclick: () => decide(false) }, "Reject"),
          )
        : pending
          ? h("p", { class: "muted small" }, `Waiting for ${a.approver_roles.map(label).join(" or ")}.`)
          : null,
    );
  };
  draw(a);
  return card;
}
