// The web app in a real headless Chromium against a real server with demo data: sign in
// and out, role-aware navigation, the queue (filters, paging, keyboard, side panel),
// requesting an action and approving it as another role until the case resolves, writing
// the exact text of a customer contact and seeing it on the approval card, case
// decisions with an outcome, the audit viewer with its chain status, the intelligence
// page, and tablet width. Screenshots of each page go to E2E_SCREENSHOTS.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { browser, newPage, shot, signIn, startServer } from "./harness.mjs";

let srv;
let b;
const tokens = {};

before(async () => {
  srv = await startServer({ orders: 1500 });
  for (const [name, role] of [
    ["rita", "service_rep"],
    ["pat", "planner"],
    ["fran", "finance"],
  ])
    tokens[role] = srv.token(name, role);
  b = await browser();
});

after(async () => {
  await b?.close();
  await srv?.stop();
});

/** The first case of a queue query with an option matching `want`, and that option's index. */
async function findOption(query, want) {
  const list = await srv.api(srv.admin, query);
  for (const c of list.body.items) {
    const d = await srv.api(srv.admin, `/cases/${c.id}`);
    const i = d.body.case.exception.recommendations.findIndex(want);
    if (i >= 0) return [d.body.case, i];
  }
  return [null, -1];
}

function clean(page) {
  assert.deepEqual(page.problems, [], "no page errors, console errors or CSP violations");
}

test("sign in: a wrong token is refused; the right one shows the role's pages; sign out forgets it", async () => {
  const page = await newPage(b);
  await page.goto(`${srv.url}/`);
  await shot(page, "00-sign-in");
  await page.fill("#token", "oc_wrong");
  await page.press("#token", "Enter");
  await page.waitForFunction(() => document.querySelector("#signin-error")?.textContent.includes("unknown or revoked"));
  await page.fill("#token", tokens.service_rep);
  await page.click("button[type=submit]");
  await page.waitForSelector("#queue-rows tr.case-row");
  assert.equal(await page.textContent("#who .user"), "rita");
  const nav = await page.$$eval("#nav a", (as) => as.map((a) => a.dataset.page));
  assert.deepEqual(nav, ["queue", "chat", "approvals", "intel"], "a service rep has no audit page");
  assert.equal(await page.$("#scan-now"), null, "a service rep may not scan");
  // The token lives in this tab's sessionStorage only, and a reload keeps the session.
  await page.reload();
  await page.waitForSelector("#queue-rows tr.case-row");
  await page.click("#signout");
  await page.waitForSelector("#token");
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  // The audit page is not reachable by URL either.
  await signIn(page, srv.url, tokens.service_rep);
  await page.goto(`${srv.url}/#/audit`);
  await page.waitForSelector("#queue-rows tr.case-row");
  assert.equal(await page.$("#audit-rows"), null);
  clean(page);
  await page.context().close();
});

test("queue: ranked, filtered by kind, owner, warehouse, tier and severity, paged, opened by keyboard", async () => {
  const page = await newPage(b);
  await signIn(page, srv.url, srv.admin);
  await page.waitForSelector("#queue-rows tr.case-row");
  const all = await srv.api(srv.admin, "/exceptions?limit=50");
  const countText = () => page.textContent("#queue-count");
  assert.equal(await countText(), `${all.body.total.toLocaleString("en")} cases`);
  const scores = await page.$$eval("#queue-rows .score", (els) => els.map((e) => Number(e.textContent)));
  assert.equal(scores.length, 50, "50 a page");
  assert.deepEqual(scores, [...scores].sort((x, y) => y - x), "ranked by score");
  assert.deepEqual(scores, all.body.items.map((c) => c.score));
  // The filter menus list the values with their counts.
  await page.waitForSelector("#f-kind option:nth-child(3)", { state: "attached" });
  await shot(page, "01-queue");
  for (const [sel, param] of [
    ["#f-kind", "kind"],
    ["#f-owner", "owner"],
    ["#f-warehouse", "warehouse"],
    ["#f-tier", "tier"],
    ["#f-severity", "severity"],
  ]) {
    const value = await page.$eval(sel, (s) => s.options[1].value);
    await page.selectOption(sel, value);
    const expect = await srv.api(srv.admin, `/exceptions?${param}=${value}&limit=1`);
    await page.waitForFunction(
      ([t]) => document.querySelector("#queue-count").textContent === t,
      [`${expect.body.total.toLocaleString("en")} case${expect.body.total === 1 ? "" : "s"}`],
    );
    assert.ok(page.url().includes(`${param}=${value}`), "filters live in the URL");
    const cells = await page.$$eval("#queue-rows tr.case-row", (rows) => rows.length);
    assert.equal(cells, Math.min(50, expect.body.total));
    await page.selectOption(sel, "");
  }
  await page.waitForFunction((t) => document.querySelector("#queue-count").textContent === t, `${all.body.total.toLocaleString("en")} cases`);
  // Two filters at once, and a customer search.
  const first = all.body.items[0];
  await page.selectOption("#f-kind", first.kind);
  await page.fill("#f-customer", first.customer.slice(0, 6));
  const both = await srv.api(srv.admin, `/exceptions?kind=${first.kind}&customer=${encodeURIComponent(first.customer.slice(0, 6))}&limit=1`);
  await page.waitForFunction((t) => document.querySelector("#queue-count").textContent === t, `${both.body.total.toLocaleString("en")} case${both.body.total === 1 ? "" : "s"}`);
  await page.fill("#f-customer", "");
  await page.selectOption("#f-kind", "");
  // Paging.
  await page.waitForFunction((t) => document.querySelector("#queue-count").textContent === t, `${all.body.total.toLocaleString("en")} cases`);
  await page.click("button[aria-label='Next page']");
  const p2 = await srv.api(srv.admin, "/exceptions?limit=50&offset=50");
  await page.waitForFunction((id) => document.querySelector("#queue-rows tr.case-row")?.dataset.id === id, p2.body.items[0].id);
  await page.click("button[aria-label='Previous page']");
  await page.waitForFunction((id) => document.querySelector("#queue-rows tr.case-row")?.dataset.id === id, first.id);
  // Keyboard: focus the first case, arrow down, Enter opens the side panel.
  await page.focus("#queue-rows a.case-link");
  await page.keyboard.press("ArrowDown");
  const focused = await page.evaluate(() => document.activeElement.closest("tr").dataset.id);
  assert.equal(focused, all.body.items[1].id);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#case-panel .evidence li");
  assert.equal(await page.evaluate(() => document.activeElement.id), "case-title", "focus moves to the panel");
  const detail = await srv.api(srv.admin, `/cases/${all.body.items[1].id}`);
  assert.equal(await page.textContent("#case-title"), detail.body.case.title);
  assert.equal(await page.$$eval("#case-panel .evidence > li", (l) => l.length), detail.body.case.exception.evidence.length);
  assert.equal(await page.$$eval("#case-panel .rec", (l) => l.length), detail.body.case.exception.recommendations.length);
  if (detail.body.case.exception.recommendations.some((r) => r.tradeoffs.length))
    assert.ok(await page.$("#case-panel .tradeoffs li"), "trade-offs shown");
  await shot(page, "02-case-panel");
  await page.keyboard.press("Tab");
  await page.click("#close-panel");
  assert.ok(await page.$eval("#case-panel", (p) => p.hidden));
  clean(page);
  await page.context().close();
});

test("request an action as the owner, approve it as another role, the case resolves and the audit shows it", async () => {
  // A service-rep case whose recommendation a planner approves.
  const [target, recIndex] = await findOption("/exceptions?owner=service_rep&limit=200", (r) => r.action === "reschedule" && r.approver_roles.includes("planner"));
  assert.ok(target, "the demo has a service-rep case with a reschedule a planner approves");

  const rep = await newPage(b);
  await signIn(rep, srv.url, tokens.service_rep);
  await rep.goto(`${srv.url}/#/queue?case=${target.id}`);
  await rep.waitForSelector("#case-panel .rec");
  await rep.click(`#case-panel button[data-rec="${recIndex}"]`);
  await rep.waitForSelector("#case-panel article.approval.st-pending");
  const pending = await srv.api(srv.admin, `/cases/${target.id}`);
  const ap = pending.body.approvals[0];
  assert.equal(ap.status, "pending");
  assert.equal(ap.action, "reschedule");

  // The planner sees it in the inbox, with the badge, and approves it in place.
  const planner = await newPage(b);
  await signIn(planner, srv.url, tokens.planner);
  await planner.waitForFunction(() => !document.querySelector("#badge").hidden);
  await planner.click("#nav a[data-page=approvals]");
  await planner.waitForSelector(`article[data-approval="${ap.id}"] .approve`);
  await shot(planner, "03-approvals");
  await planner.click(`article[data-approval="${ap.id}"] .approve`);
  // Approving answers at once; the card follows the worker's execution until it ends.
  await planner.waitForSelector(`article[data-approval="${ap.id}"].approval header .st-executed`);
  // The re-scan after the execution follows its end by a moment.
  let done;
  for (let i = 0; i < 100; i++) {
    done = await srv.api(srv.admin, `/cases/${target.id}`);
    if (done.body.case.status === "resolved") break;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  assert.equal(done.body.approvals[0].status, "executed");
  assert.equal(done.body.case.status, "resolved", "the re-scan after execution cleared the case");
  assert.equal(done.body.case.outcome, "cleared");

  // The rep's panel shows the resolved case and its history.
  await rep.goto(`${srv.url}/#/queue?status=all&case=${target.id}`);
  // A hash change does not reload the page: the earlier panel (this same case, still
  // pending) can be in the DOM before the new load even starts, so wait for a loaded panel
  // that shows the case resolved; if it never does, the wait times out and the test fails.
  await rep.waitForFunction(() => {
    const p = document.querySelector("#case-panel");
    return p && !p.hasAttribute("aria-busy") && /Resolved/.test(p.textContent) && p.querySelector(".history li");
  });
  assert.match(await rep.textContent("#case-panel .history"), /action\.executed/);

  // The admin's audit viewer shows the requests and decisions, chain intact.
  const admin = await newPage(b);
  await signIn(admin, srv.url, srv.admin);
  await admin.click("#nav a[data-page=audit]");
  await admin.waitForSelector("#verify .ok");
  assert.match(await admin.textContent("#verify"), /Chain intact/);
  await admin.fill("#a-case", target.id);
  await admin.click("form.filters button[type=submit]");
  await admin.waitForFunction(() => document.querySelectorAll("#audit-rows tr").length >= 3);
  const kinds = await admin.$$eval("#audit-rows td code", (els) => els.map((e) => e.textContent));
  for (const k of ["approval.requested", "approval.decided", "action.executed"]) assert.ok(kinds.includes(k), `${k} in ${kinds}`);
  await shot(admin, "04-audit");
  // Search by kind prefix, and page through older entries.
  await admin.fill("#a-case", "");
  await admin.fill("#a-kind", "approval.");
  await admin.click("form.filters button[type=submit]");
  await admin.waitForFunction(() => [...document.querySelectorAll("#audit-rows td code")].every((e) => e.textContent.startsWith("approval.")));
  for (const p of [rep, planner, admin]) clean(p);
  for (const p of [rep, planner, admin]) await p.context().close();
});

test("contacting a customer: the rep writes the exact text; the approval card (the inbox shows the same card) shows it as it will be sent", async () => {
  const [target, recIndex] = await findOption("/exceptions?owner=service_rep&status=open&limit=200", (r) => r.action === "contact_customer");
  assert.ok(target, "the demo has a service-rep case proposing to contact the customer");
  const purpose = target.exception.recommendations[recIndex].purpose;
  const rep = await newPage(b);
  await signIn(rep, srv.url, tokens.service_rep);
  await rep.goto(`${srv.url}/#/queue?case=${target.id}`);
  await rep.waitForSelector("#case-panel .rec");
  await rep.click(`#case-panel button[data-rec="${recIndex}"]`);
  await rep.waitForSelector("dialog[open] textarea");
  assert.match(await rep.textContent("dialog[open]"), /internal, not sent/);
  // No text, no request: the dialog asks for one.
  await rep.click("dialog[open] button[value=ok]");
  assert.match(await rep.textContent("dialog[open] .field-error"), /few words/);
  const text = "Dear customer,\n\nyour order leaves our warehouse on Friday. <b>Sorry</b> for the wait.";
  await rep.fill("dialog[open] textarea", text);
  await rep.click("dialog[open] button[value=ok]");
  await rep.waitForSelector("#case-panel article.approval.st-pending .message-text");
  const d = await srv.api(srv.admin, `/cases/${target.id}`);
  const ap = d.body.approvals.find((a) => a.action === "contact_customer");
  assert.equal(ap.params.message, text);
  assert.equal(ap.params.purpose, purpose);
  // The card shows the text as text (no markup), line breaks kept.
  const shown = await rep.$eval("#case-panel article.approval.st-pending .message-text", (e) => ({ text: e.textContent, bold: !!e.querySelector("b") }));
  assert.deepEqual(shown, { text, bold: false });
  assert.ok((await rep.textContent("#case-panel article.approval.st-pending")).includes(`Purpose (internal, not sent): ${purpose}`));
  await shot(rep, "04b-contact-approval");
  clean(rep);
  await rep.context().close();
});

test("case decisions: acknowledge, then resolve with an outcome through the dialog; other roles can't", async () => {
  const list = await srv.api(srv.admin, "/exceptions?owner=finance&status=open&limit=2");
  const c = list.body.items[0];
  // A service rep sees no decision buttons on a finance case.
  const rep = await newPage(b);
  await signIn(rep, srv.url, tokens.service_rep);
  await rep.goto(`${srv.url}/#/queue?case=${c.id}`);
  await rep.waitForSelector("#case-panel .evidence");
  assert.equal(await rep.$("#ack"), null);
  assert.equal(await rep.$("#resolve"), null);
  assert.match(await rep.textContent("#case-panel"), /Only the finance/);

  const fin = await newPage(b);
  await signIn(fin, srv.url, tokens.finance);
  await fin.goto(`${srv.url}/#/queue?owner=finance&case=${c.id}`);
  await fin.waitForSelector("#ack");
  await fin.click("#ack");
  await fin.waitForSelector("#case-panel .pill.st-acknowledged");
  await fin.click("#resolve");
  await fin.waitForSelector("dialog[open] textarea");
  await shot(fin, "05-resolve-dialog");
  // An empty outcome is refused in the dialog; a real one resolves.
  await fin.click("dialog[open] button[value=ok]");
  assert.match(await fin.textContent("dialog[open] .field-error"), /few words/);
  await fin.fill("dialog[open] textarea", "customer paid the overdue invoice; hold released");
  await fin.click("dialog[open] button[value=ok]");
  await fin.waitForSelector("#case-panel .outcome");
  const d = await srv.api(srv.admin, `/cases/${c.id}`);
  assert.equal(d.body.case.status, "resolved");
  assert.equal(d.body.case.outcome, "customer paid the overdue invoice; hold released");
  assert.equal(d.body.case.decided_by, "fran");
  // It left the active queue.
  await fin.waitForFunction((id) => !document.querySelector(`#queue-rows tr[data-id="${id}"]`), c.id);
  clean(rep);
  clean(fin);
  await rep.context().close();
  await fin.context().close();
});

test("intelligence page: charts or a plain notice per chart, drill-down links into the queue", async () => {
  const page = await newPage(b);
  await signIn(page, srv.url, srv.admin);
  await page.click("#nav a[data-page=intel]");
  await page.waitForFunction(() => document.querySelectorAll(".chart-card .card-body[aria-busy]").length === 0 && document.querySelectorAll(".chart-card").length === 4);
  await shot(page, "06-intelligence");
  const has = (await srv.api(srv.admin, "/intelligence/at-risk?by=customer&limit=10")).status === 200;
  if (!has) {
    console.log("# intelligence API not on this server: charts show their notice; drill-down not exercised");
    assert.match(await page.textContent(".dash"), /does not offer this chart yet/);
  } else {
    // A trend bar links to its kind and the bucket's dates.
    const trend = await page.$eval("#trends-title ~ .card-body a.bar-link", (a) => a.getAttribute("href"));
    assert.match(trend, /kind=[a-z_]+&opened_from=\d{4}-\d\d-\d\d&opened_to=\d{4}-\d\d-\d\d/);
    // The first risk bar (by keyboard) opens exactly the cases the server lists for it.
    const r = await srv.api(srv.admin, "/intelligence/at-risk?by=customer&limit=10");
    const top = r.body.rows[0];
    await page.focus("#risk-title ~ .card-body a.bar-link");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#queue-rows tr.case-row");
    assert.match(await page.textContent(".drill"), new RegExp(`${top.case_ids.length} cases behind a chart bar`));
    await page.waitForFunction((n) => document.querySelector("#queue-count").textContent === `${n} case${n === 1 ? "" : "s"}`, top.case_ids.length);
    const ids = await page.$$eval("#queue-rows tr.case-row", (rows) => rows.map((x) => x.dataset.id));
    assert.deepEqual([...ids].sort(), [...top.case_ids].sort(), "the bar's cases, all on one page (at most 50)");
    await shot(page, "07-drill-down");
  }
  clean(page);
  await page.context().close();
});

test("tablet width: the queue and the side panel stay readable", async () => {
  const page = await newPage(b, { width: 820, height: 1100 });
  await signIn(page, srv.url, tokens.planner);
  await page.waitForSelector("#queue-rows tr.case-row");
  await page.click("#queue-rows a.case-link");
  await page.waitForSelector("#case-panel .evidence");
  // Nothing overflows the viewport horizontally.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the viewport`);
  await shot(page, "08-tablet-queue");
  // Escape closes the overlaying panel and gives focus back to the case's row.
  await page.keyboard.press("Escape");
  assert.ok(await page.$eval("#case-panel", (p) => p.hidden));
  assert.ok(await page.evaluate(() => document.activeElement.classList.contains("case-link")));
  // The dashboard and the approvals fit too.
  for (const [hash, name, ready] of [
    ["#/intel", "08b-tablet-intelligence", () => document.querySelectorAll(".chart-card").length === 4 && !document.querySelector(".chart-card [aria-busy]")],
    ["#/approvals", "08c-tablet-approvals", () => !!document.querySelector("#approvals-list:not([aria-busy])")],
  ]) {
    await page.goto(`${srv.url}/${hash}`);
    await page.waitForFunction(ready);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(wide <= 0, `${hash} is ${wide}px wider than the viewport`);
    await shot(page, name);
  }
  clean(page);
  await page.context().close();
});
