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
                            const button = ev.currentTarget;
                            // An action that contacts someone carries the exact text: the
                            // approver sees it, and it is what is sent.
                            const message = await messageFor(r);
                            if (message === null) return;
                            button.disabled = true;
                            try {
                              await post(`/cases/${encodeURIComponent(id)}/actions`, message ? { recommendation: i, message } : { recommendation: i });
                              toast(`Requested: ${r.summary}. It waits for ${r.approver_roles.map(label).join(" or ")}.`);
                              refresh();
                            } catch (e) {
                              toast(e.message, "error");
                              button.disabled = false;
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
      h("h3", {}, data.history_scope === "decisions" ? "Decisions" : "History"),
      data.history_scope === "decisions" ? h("p", { class: "muted small" }, "The decisions on this case; the full audit trail needs the read_audit permission.") : null,
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

/** Longest message an action may send (the server's limit). */
const MAX_MESSAGE = 4000;

/**
 * The text an option sends, written or edited by the user before requesting: "" for an
 * option that sends nothing, null when the user cancels.
 */
async function messageFor(r) {
  if (r.action === "contact_customer")
    return ask("Message to the customer", {
      label: "The exact text the customer will receive",
      hint: `Purpose (internal, not sent): ${r.purpose}. The approver sees this text and approves it; nothing else is sent.`,
      confirm: "Request approval",
      rows: 8,
      maxlength: MAX_MESSAGE,
    });
  if (r.action === "expedite_purchase")
    return ask("Message to the supplier", {
      label: `The exact text ${r.supplier || "the supplier"} will receive`,
      value: `Please confirm whether ${r.po_ref} can be shipped sooner.`,
      confirm: "Request approval",
      rows: 5,
      maxlength: MAX_MESSAGE,
    });
  return "";
}

/** A human sentence for an action's parameters. */
export function describeAction(params) {
  if (!params) return "";
  const skip = new Set(["action", "message"]);
  return Object.entries(params)
    .filter(([k, v]) => !skip.has(k) && v !== null && typeof v !== "object")
    .map(([k, v]) => `${k === "purpose" ? "Purpose (internal, not sent)" : label(k)}: ${v}`)
    .join(" · ");
}

/**
 * An approval request as a card: what would change, who asked, who may decide, and — for
 * a role the request names, while it is pending — Approve and Reject in place.
 */
export function approvalCard(a, ctx, onDecided) {
  const card = h("article", { class: `card approval st-${a.status}`, dataset: { approval: a.id }, "aria-label": `Approval request ${label(a.action)}` });
  let watching = false;
  // An approved request runs in the server's worker, not in the approving request: follow
  // it (approved → executing → executed | failed) until it ends, then let the page refresh.
  const follow = () => {
    if (watching) return;
    watching = true;
    let ticks = 0;
    const tick = async () => {
      // Stop once the card left the page (or never reached it).
      if (!card.isConnected && ++ticks > 3) {
        watching = false;
        return;
      }
      try {
        const r = await get(`/approvals/${encodeURIComponent(a.id)}`);
        draw(r.approval);
        if (r.approval.status === "executed" || r.approval.status === "failed") {
          watching = false;
          onDecided?.(r.approval);
          return;
        }
      } catch {
        // A dropped connection: try again at the next tick.
      }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 500);
  };
  const draw = (a) => {
    card.className = `card approval st-${a.status}`;
    const pending = a.status === "pending";
    const running = a.status === "approved" || a.status === "executing";
    const ex = a.execution || {};
    const mayApprove = ctx.mayApprove(a);
    const mayReject = ctx.mayReject(a);
    const approvals = (a.decisions || []).filter((d) => d.decision === "approved");
    const needed = a.approvers_needed || 1;
    const waitingFor = approvals.length > 0 && approvals.length < needed
      ? `Waiting for a ${needed - approvals.length === 1 && needed === 2 ? "second" : "further"} approver (${approvals.length} of ${needed}: ${approvals.map((d) => d.by).join(", ")})`
      : `Waiting for ${needed > 1 ? `${needed} approvers: ` : ""}${a.approver_roles.map(label).join(" or ")}`;
    const whyNot = !mayReject
      ? ""
      : a.requested_by === ctx.me.name && !a.requester_may_approve
        ? " You asked for it, so someone else approves it."
        : approvals.some((d) => d.by === ctx.me.name)
          ? " You approved it already."
          : "";
    const decide = async (approve) => {
      let reason = null;
      if (!approve) {
        reason = await ask("Reject the request", { label: "Why it should not happen", confirm: "Reject" });
        if (reason === null) return;
      }
      for (const b of card.querySelectorAll("button")) b.disabled = true;
      try {
        const r = await post(`/approvals/${encodeURIComponent(a.id)}/${approve ? "approve" : "reject"}`, reason ? { reason } : {});
        const left = (r.approval.approvers_needed || 1) - (r.approval.decisions || []).filter((d) => d.decision === "approved").length;
        toast(approve ? (r.approval.status === "pending" && left > 0 ? "Approved; waiting for a second approver." : r.approval.status === "approved" ? "Approved; executing…" : `Approved; ${r.approval.status}.`) : "Rejected.");
        draw(r.approval);
        if (r.approval.status === "approved" || r.approval.status === "executing") follow();
        else onDecided?.(r.approval);
      } catch (e) {
        toast(e.message, "error");
        for (const b of card.querySelectorAll("button")) b.disabled = false;
      }
    };
    mount(
      card,
      h("header", { class: "row wrap" }, h("strong", {}, label(a.action)), status(a.status), a.case_id ? h("a", { href: `#/queue?status=all&case=${encodeURIComponent(a.case_id)}`, class: "small" }, "case") : null),
      h("p", { class: "small" }, describeAction(a.params)),
      a.params?.message
        ? h(
            "figure",
            { class: "message" },
            h("figcaption", { class: "small" }, a.action === "contact_customer" ? "Sent to the customer, exactly:" : "Sent to the supplier, exactly:"),
            h("blockquote", { class: "message-text" }, a.params.message),
          )
        : null,
      h(
        "p",
        { class: "muted small" },
        `Requested by ${a.requested_by} ${time(a.requested_at)} · decided by ${a.approver_roles.map(label).join(" or ")}`,
        pending ? ` · expires ${time(a.expires_at)}` : "",
      ),
      ...(a.decisions || []).map((d) => h("p", { class: "small decision" }, `${label(d.decision)} by ${d.by} (${label(d.role)}) ${time(d.at)}${d.reason ? ` — “${d.reason}”` : ""}`)),
      a.decided_by && !(a.decisions || []).length ? h("p", { class: "small" }, `${label(a.status)} by ${a.decided_by} ${time(a.decided_at)}${a.reason ? ` — “${a.reason}”` : ""}`) : null,
      running
        ? h(
            "p",
            { class: "small executing", role: "status" },
            "Executing…",
            ex.attempts > 1 || ex.last_error ? ` Attempt ${Math.max(ex.attempts || 1, 1)}` : "",
            ex.last_error ? `; the last try failed (${ex.last_error}), next try ${time(ex.due_at)}` : "",
          )
        : null,
      a.status === "failed" && a.result?.error
        ? h("p", { class: "small result error" }, `Failed: ${a.result.error}`)
        : a.result ? h("p", { class: "small result" }, "Result: ", typeof a.result === "object" ? describeAction(a.result) || JSON.stringify(a.result) : String(a.result)) : null,
      pending ? h("p", { class: "muted small waiting" }, `${waitingFor}.${whyNot}`) : null,
      pending && mayReject
        ? h(
            "div",
            { class: "row" },
            mayApprove ? h("button", { class: "btn primary small approve", onclick: () => decide(true) }, "Approve") : null,
            h("button", { class: "btn small reject", onclick: () => decide(false) }, "Reject"),
          )
        : null,
    );
  };
  draw(a);
  if (a.status === "approved" || a.status === "executing") follow();
  return card;
}
