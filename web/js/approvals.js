// The approvals inbox: requests the signed-in role may decide (pending by default), with
// the other states a tab away. Each request is an approval card with Approve / Reject.

import { get } from "./api.js";
import { h, mount } from "./dom.js";
import { approvalCard } from "./case.js";

const TABS = [
  ["pending", "Waiting for me", true],
  ["pending", "All pending", false],
  ["executed", "Executed", false],
  ["rejected", "Rejected", false],
  ["failed", "Failed", false],
  ["expired", "Expired", false],
  ["executing", "Executing", false],
];

export async function render(root, ctx, params) {
  let tab = Number(params.get("tab") || 0);
  if (!TABS[tab]) tab = 0;
  const list = h("div", { class: "cards grid", id: "approvals-list", "aria-live": "polite" });
  const tabs = h(
    "div",
    { class: "tabs", role: "group", "aria-label": "Which requests" },
    TABS.map(([, name], i) =>
      h("button", { class: "tab", id: `tab-${i}`, "aria-pressed": String(i === tab), onclick: () => select(i) }, name),
    ),
  );
  mount(
    root,
    h(
      "section",
      { class: "narrow", "aria-labelledby": "ap-title" },
      h("div", { class: "page-head" }, h("h1", { id: "ap-title" }, "Approvals"),
        h("p", { class: "muted" }, `You approve as ${ctx.me.role.replaceAll("_", " ")}: ${ctx.me.approves.length ? ctx.me.approves.join(", ").replaceAll("_", " ") : "no actions"}.`)),
      tabs,
      list,
    ),
  );

  async function select(i) {
    tab = i;
    for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.id === `tab-${i}`));
    history.replaceState(null, "", `#/approvals${i ? `?tab=${i}` : ""}`);
    await load();
  }

  async function load() {
    const [st, , mine] = TABS[tab];
    list.setAttribute("aria-busy", "true");
    const r = await get("/approvals", { status: st, mine: mine ? "true" : "" });
    list.removeAttribute("aria-busy");
    mount(
      list,
      r.items.length
        ? r.items.map((a) => approvalCard(a, ctx, () => ctx.refreshBadge()))
        : h("p", { class: "empty" }, tab === 0 ? "Nothing waits for you." : "None."),
      r.items.length >= 200 ? h("p", { class: "muted" }, "Showing the 200 most recent.") : null,
    );
  }

  await load();
}
