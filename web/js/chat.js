// The copilot chat. A turn is POST /api/chat answered as a stream of server-sent events
// (read with fetch + a stream reader, since EventSource can't POST): the tools the copilot
// used appear as expandable steps with their results, the answer streams in, citations
// open the record (order, case, policy…) in a drawer, and an action the copilot asks for
// becomes an approval card that the right role approves or rejects in place.
//
// No layout shift: the transcript is the only part that grows, inside its own scroll box;
// new content is appended below what is already shown, and the composer never moves.

import { ApiError, chat, get } from "./api.js";
import { h, label, money, mount, toast } from "./dom.js";
import { approvalCard } from "./case.js";

const MAX = 4000;

export async function render(root, ctx, params) {
  let conversationId = params.get("conversation") || null;
  const order = params.get("order") || null;
  const caseId = params.get("case") || null;
  let running = null;

  const log = h("div", { class: "transcript", id: "transcript", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  const input = h("textarea", {
    id: "chat-input",
    rows: 2,
    maxlength: MAX,
    placeholder: order ? `Ask about ${order}… (Enter to send, Shift+Enter for a new line)` : "Ask about an order, a case or a policy… (Enter to send)",
    "aria-label": "Message to the copilot",
  });
  const send = h("button", { class: "btn primary", id: "chat-send", type: "submit" }, "Send");
  const stop = h("button", { class: "btn", type: "button", id: "chat-stop", hidden: true, onclick: () => running?.abort() }, "Stop");
  const mode = h("span", { class: "muted small", id: "chat-mode" });
  const drawer = h("aside", {
    class: "drawer",
    id: "drawer",
    hidden: true,
    "aria-label": "Record",
    onkeydown: (e) => {
      if (e.key === "Escape") {
        drawer.hidden = true;
        input.focus();
      }
    },
  });
  const form = h("form", { class: "composer" }, input, h("div", { class: "composer-side" }, send, stop));

  mount(
    root,
    h(
      "div",
      { class: "chat-layout" },
      h(
        "section",
        { class: "chat", "aria-labelledby": "chat-title" },
        h(
          "div",
          { class: "page-head" },
          h("h1", { id: "chat-title" }, "Copilot"),
          order || caseId ? h("span", { class: "tag" }, `about ${[order, caseId].filter(Boolean).join(" · ")}`) : null,
          mode,
          h("button", { class: "btn small", type: "button", id: "chat-new", onclick: () => ctx.nav(`#/chat${order ? `?order=${encodeURIComponent(order)}` : ""}`) }, "New conversation"),
        ),
        log,
        form,
      ),
      drawer,
    ),
  );

  if (!conversationId)
    log.append(
      h(
        "div",
        { class: "hint" },
        h("p", {}, "The copilot reads the queue, orders, policies and past cases, and answers with its sources. It can draft, and it can ask for an action — which runs only when someone with the right role approves it."),
        h(
          "div",
          { class: "row wrap" },
          suggestions(order).map((q) => h("button", { class: "btn small suggestion", type: "button", onclick: () => ask(q) }, q)),
        ),
      ),
    );
  else await replay(conversationId);

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    ask(input.value.trim());
  });
  input.focus();

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }
  function follow(wasNear) {
    if (wasNear) log.scrollTop = log.scrollHeight;
  }

  async function ask(text) {
    if (!text || running) return;
    if (text.length > MAX) return toast(`A message has at most ${MAX} characters.`, "error");
    log.querySelector(".hint")?.remove();
    input.value = "";
    const turn = turnView(text);
    log.append(turn.el);
    log.scrollTop = log.scrollHeight;
    running = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    try {
      await chat({ message: text, conversation_id: conversationId, order }, (type, data) => {
        const near = nearBottom();
        if (type === "conversation") {
          conversationId = data.conversation_id;
          mode.textContent = data.mode === "offline" ? "offline mode (no language model)" : `model: ${data.mode}`;
          history.replaceState(null, "", `#/chat?conversation=${encodeURIComponent(conversationId)}${order ? `&order=${encodeURIComponent(order)}` : ""}`);
        }
        turn.event(type, data);
        follow(near);
      }, running.signal);
    } catch (e) {
      if (e.name === "AbortError") turn.event("notice", { message: "Stopped." });
      else turn.event("error", { message: e instanceof ApiError ? `${e.message} (${e.code})` : e.message });
    } finally {
      turn.finish();
      running = null;
      send.disabled = false;
      stop.hidden = true;
      input.focus();
    }
  }

  async function replay(id) {
    let conv;
    try {
      conv = await get(`/conversations/${encodeURIComponent(id)}`);
    } catch (e) {
      log.append(h("p", { class: "empty error" }, `Could not load the conversation: ${e.message}`));
      return;
    }
    for (const t of conv.turns) {
      const view = turnView(t.message);
      log.append(view.el);
      for (const ev of t.events || []) view.event(ev.type || ev.event, ev.data || ev);
      if (!(t.events || []).some((ev) => (ev.type || ev.event) === "text_delta") && t.answer) view.event("text_delta", { text: t.answer });
      view.finish();
    }
    log.scrollTop = log.scrollHeight;
  }

  /** One question and its streamed answer. */
  function turnView(question) {
    const steps = h("ol", { class: "steps", "aria-label": "What the copilot did" });
    // The progress line sits beside the "Copilot" label, so it never moves what is below.
    const status = h("span", { class: "turn-status muted small" }, h("span", { class: "spinner", "aria-hidden": "true" }), "Thinking…");
    const answer = h("div", { class: "answer" });
    const cards = h("div", { class: "cards" });
    const cites = h("div", { class: "citations", hidden: true });
    const foot = h("p", { class: "turn-foot muted small" });
    const el = h(
      "article",
      { class: "turn" },
      h("div", { class: "msg user" }, h("span", { class: "speaker" }, ctx.me.name), h("p", {}, question)),
      h("div", { class: "msg copilot" }, h("div", { class: "who-row" }, h("span", { class: "speaker" }, "Copilot"), status), steps, answer, cards, cites, foot),
    );
    const calls = new Map();
    let text = "";
    let textNode = null;
    let done = false;

    function step(data) {
      const res = h("div", { class: "step-result" }, h("p", { class: "muted small" }, "running…"));
      const item = h(
        "li",
        { class: `step risk-${data.risk}`, dataset: { tool: data.tool } },
        h(
          "details",
          {},
          h("summary", {}, h("span", { class: "step-tool" }, label(data.tool)), " ", h("span", { class: `tag risk-${data.risk}` }, data.risk), " ", h("span", { class: "step-summary muted" }, argsLine(data.arguments))),
          h("pre", { class: "args" }, JSON.stringify(data.arguments, null, 2)),
          res,
        ),
      );
      calls.set(data.call_id, { item, res });
      steps.append(item);
    }

    function event(type, data) {
      switch (type) {
        case "conversation":
          break;
        case "retrieving":
          status.lastChild.textContent = `Searching ${(data.corpora || []).join(", ")} for “${data.query}”…`;
          steps.append(h("li", { class: "step retrieve" }, h("span", { class: "step-tool" }, "Search"), " ", h("span", { class: "muted" }, `${(data.corpora || []).join(", ")}: “${data.query}”`)));
          break;
        case "tool_call":
          status.lastChild.textContent = `${label(data.tool)}…`;
          step(data);
          break;
        case "tool_result": {
          let c = calls.get(data.call_id);
          if (!c) {
            step({ call_id: data.call_id, tool: data.tool, risk: "read", arguments: {} });
            c = calls.get(data.call_id);
          }
          mount(
            c.res,
            h("p", {}, data.summary, data.count != null ? h("span", { class: "muted" }, ` (${data.count})`) : null),
            data.sources?.length ? h("p", { class: "row wrap" }, data.sources.map((s) => citation(s))) : null,
          );
          c.item.querySelector(".step-summary").textContent = data.summary;
          break;
        }
        case "text_delta":
          status.lastChild.textContent = "Answering…";
          text += data.text;
          if (!textNode) {
            textNode = h("p", { class: "answer-text" });
            answer.append(textNode);
          }
          textNode.textContent = text;
          break;
        case "approval_requested": {
          const placeholder = h("div", { class: "card approval" }, h("p", {}, h("strong", {}, label(data.action)), " — ", data.summary));
          cards.append(placeholder);
          get(`/approvals/${encodeURIComponent(data.approval_id)}`)
            .then((r) => placeholder.replaceWith(approvalCard(r.approval, ctx, () => ctx.refreshBadge())))
            .catch(() => placeholder.append(h("p", { class: "muted small" }, `Request ${data.approval_id}, decided by ${(data.approver_roles || []).map(label).join(" or ")}.`)));
          ctx.refreshBadge();
          break;
        }
        case "notice":
          answer.append(h("p", { class: "notice", role: "status" }, data.message));
          break;
        case "error":
          answer.append(h("p", { class: "notice error", role: "alert" }, data.message));
          break;
        case "done":
          done = true;
          if (data.citations?.length) {
            mount(cites, h("span", { class: "muted small" }, "Sources: "), data.citations.map((s) => citation(s)));
            cites.hidden = false;
          }
          foot.textContent = [
            data.fallback ? "answered offline (fallback)" : null,
            data.tokens && data.tokens.prompt + data.tokens.completion > 0 ? `${data.tokens.prompt + data.tokens.completion} tokens` : null,
            data.ms != null ? `${(data.ms / 1000).toFixed(1)} s` : null,
          ]
            .filter(Boolean)
            .join(" · ");
          break;
        default:
          break;
      }
    }

    function finish() {
      status.replaceChildren();
      el.classList.add("finished");
      if (!done && !text && !answer.childNodes.length) answer.append(h("p", { class: "notice" }, "No answer."));
    }

    return { el, event, finish };
  }

  function citation(src) {
    return h(
      "button",
      { class: `cite kind-${src.kind}`, type: "button", title: `${src.kind} ${src.ref}`, dataset: { ref: src.ref, kind: src.kind }, onclick: () => openRecord(src) },
      src.label || src.ref,
    );
  }

  async function openRecord(src) {
    drawer.hidden = false;
    const close = h("button", { class: "btn small", id: "drawer-close", onclick: () => (drawer.hidden = true) }, "✕ Close");
    mount(drawer, h("div", { class: "panel-head" }, close), h("p", { class: "muted" }, "Loading…"));
    close.focus();
    const body = [];
    try {
      if (src.kind === "order") {
        const x = await get(`/orders/${encodeURIComponent(src.ref)}/explain`);
        body.push(
          h("p", { class: "eyebrow" }, "Sales order"),
          h("h2", {}, x.order, " · ", x.customer),
          h("p", {}, `${label(x.status)} · ${x.state} · warehouse ${x.warehouse || "–"} · tier ${x.tier} · open value ${money(x.open_value)} ${x.currency || ""}`),
          x.exceptions.length
            ? h("ul", { class: "evidence" }, x.exceptions.map((e) => h("li", {}, h("a", { href: `#/queue?status=all&case=${encodeURIComponent(e.id)}` }, e.title), ` — ${label(e.kind)}, score ${e.score}`)))
            : h("p", { class: "muted" }, "Nothing blocks or threatens this order."),
          h(
            "table",
            { class: "lines" },
            h("thead", {}, h("tr", {}, ["#", "Product", "Open", "Reserved", "Short", "Need by"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, x.lines.map((l) => h("tr", {}, h("td", {}, l.seq), h("td", {}, l.product), h("td", { class: "num" }, l.open_qty), h("td", { class: "num" }, l.reserved), h("td", { class: "num" }, l.short), h("td", {}, (l.need_by || "").slice(0, 10))))),
          ),
        );
      } else if (src.kind === "case" || src.kind === "past_case") {
        const id = src.ref.replace(/^past:/, "");
        const r = await get(`/cases/${encodeURIComponent(id)}`).catch(() => null);
        if (r) {
          body.push(
            h("p", { class: "eyebrow" }, `${label(r.case.kind)} · ${r.case.order_ref}`),
            h("h2", {}, r.case.title),
            h("p", {}, `${label(r.case.status)}${r.case.outcome ? ` — ${r.case.outcome}` : ""}`),
            h("ul", { class: "evidence" }, (r.case.exception.evidence || []).map((e) => h("li", {}, e.fact))),
            h("a", { class: "btn", href: `#/queue?status=all&case=${encodeURIComponent(id)}` }, "Open in the queue"),
          );
        } else body.push(h("h2", {}, src.label || src.ref), h("p", { class: "muted" }, `A past case (${src.ref}) from the history the copilot searched.`));
      } else {
        body.push(
          h("p", { class: "eyebrow" }, label(src.kind)),
          h("h2", {}, src.label || src.ref),
          h("p", {}, h("code", {}, src.ref)),
          src.kind === "policy" ? h("p", { class: "muted" }, `The clause of the policy file ${src.ref.split("#")[0]} that the answer relies on.`) : null,
        );
      }
    } catch (e) {
      body.push(h("p", { class: "empty error" }, e.message));
    }
    mount(drawer, h("div", { class: "panel-head" }, close), h("div", { class: "panel-body" }, body));
    close.focus();
  }

  return () => running?.abort();
}

function argsLine(args) {
  if (!args || typeof args !== "object") return "";
  return Object.entries(args)
    .filter(([, v]) => v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}=${v}`)
    .join(" ")
    .slice(0, 80);
}

function suggestions(order) {
  if (order)
    return [`Why is ${order} blocked?`, `What are the options for ${order}?`, `Draft an update for the customer of ${order}`];
  return ["What needs my attention first?", "Why is S00042 blocked?", "Which credit holds are waiting for finance?"];
}
