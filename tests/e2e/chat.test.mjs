// The copilot chat in the browser, against the real server's POST /api/chat (offline mode
// unless a model is configured): ask why an order is blocked and watch the grounded
// answer stream in (tool steps with results, citations that open the record), with no
// layout shift; ask for an action and get an approval card; approve it as another role;
// see the case resolved and the audit entries. Runs when the server has the chat API and
// says plainly when it does not.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { browser, newPage, shot, signIn, startServer } from "./harness.mjs";

let srv;
let b;
const tokens = {};
let hasChat = false;

before(async () => {
  srv = await startServer({ orders: 1500 });
  tokens.service_rep = srv.token("rita", "service_rep");
  tokens.finance = srv.token("fran", "finance");
  tokens.finance2 = srv.token("fred", "finance");
  const probe = await srv.api(srv.admin, "/chat", { method: "POST", body: "{}" });
  hasChat = !(probe.status === 404 && /no such route/.test(JSON.stringify(probe.body)));
  b = await browser();
});

after(async () => {
  await b?.close();
  await srv?.stop();
});

test("chat: a grounded streamed answer, an action requested, approved by another role, the case resolved and audited", async (t) => {
  if (!hasChat) {
    console.log("# NOT RUN: this server has no POST /api/chat (the copilot is not merged); the chat e2e runs once it is");
    t.skip("no chat API on this server");
    return;
  }
  // A present (not predicted) credit hold over the limit (releasing it lifts the limit; overdue invoices would
  // keep the hold): the service rep asks, finance approves the release.
  const list = await srv.api(srv.admin, "/exceptions?kind=credit_hold&limit=100");
  const c = list.body.items.find((x) => /exposure .* over the .* limit/.test(x.title));
  assert.ok(c, "the demo has a credit hold over the limit");

  const rep = await newPage(b);
  await signIn(rep, srv.url, tokens.service_rep);
  await rep.click("#nav a[data-page=chat]");
  await rep.waitForSelector("#chat-input");
  // Layout shifts while the answer streams are summed by the browser itself.
  await rep.evaluate(() => {
    window.__cls = 0;
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) if (!e.hadRecentInput) window.__cls += e.value;
    }).observe({ type: "layout-shift", buffered: false });
  });
  const composer = await rep.$eval(".composer", (el) => el.getBoundingClientRect().top);
  await rep.fill("#chat-input", `Why is ${c.order_ref} blocked?`);
  await rep.press("#chat-input", "Enter");
  await rep.waitForSelector(".turn .answer-text");
  await rep.waitForSelector(".turn.finished", { timeout: 120_000 });
  const answer = await rep.textContent(".turn .answer-text");
  assert.ok(answer.length > 20, `an answer (${answer})`);
  assert.ok(await rep.$(".turn .step"), "the tools used are listed");
  const cites = await rep.$$eval(".turn .citations .cite", (els) => els.map((e) => e.dataset.ref));
  assert.ok(cites.includes(c.order_ref), `the order is cited (${cites})`);
  assert.equal(await rep.$eval(".composer", (el) => el.getBoundingClientRect().top), composer, "the composer never moves");
  const cls = await rep.evaluate(() => window.__cls);
  console.log(`# cumulative layout shift while streaming: ${cls.toFixed(4)}`);
  assert.ok(cls < 0.01, `no layout shift while streaming (CLS ${cls})`);
  // A tool step opens to show its result; the order citation opens the record.
  await rep.click(".turn .step details summary");
  await rep.waitForSelector(".turn .step details[open] .step-result p");
  await rep.click(`.turn .citations .cite[data-ref="${c.order_ref}"]`);
  await rep.waitForSelector("#drawer:not([hidden]) h2");
  assert.match(await rep.textContent("#drawer"), new RegExp(c.order_ref));
  await shot(rep, "10-chat-answer");
  await rep.click("#drawer-close");

  // Ask for the action: the copilot can only request it; a card appears, pending.
  await rep.fill("#chat-input", `Release the credit hold on ${c.order_ref}`);
  await rep.press("#chat-input", "Enter");
  await rep.waitForSelector(".turn:nth-of-type(2).finished", { timeout: 120_000 });
  await rep.waitForSelector(".turn:nth-of-type(2) article.approval[data-approval]");
  const apId = await rep.$eval(".turn:nth-of-type(2) article.approval", (el) => el.dataset.approval);
  assert.match(await rep.textContent(".turn:nth-of-type(2) article.approval"), /Pending/);
  assert.equal(await rep.$(".turn:nth-of-type(2) article.approval .approve"), null, "a service rep may not release a credit hold");
  await shot(rep, "11-chat-approval");
  // The conversation is in the URL: a reload reads it back (GET /api/conversations/{id}).
  assert.match(rep.url(), /#\/chat\?conversation=/);
  await rep.reload();
  await rep.waitForSelector(".turn:nth-of-type(2).finished");
  assert.equal(await rep.textContent(".turn .answer-text"), answer, "the first answer reads back as streamed");
  await rep.waitForSelector(`.turn:nth-of-type(2) article.approval[data-approval="${apId}"]`);

  // Finance approves it from the inbox.
  const fin = await newPage(b);
  await signIn(fin, srv.url, tokens.finance);
  await fin.click("#nav a[data-page=approvals]");
  await fin.waitForSelector(`article[data-approval="${apId}"] .approve`);
  await fin.click(`article[data-approval="${apId}"] .approve`);
  const needed = (await srv.api(srv.admin, `/approvals/${apId}`)).body.approval.approvers_needed;
  if (needed === 2) {
    // A hold on a larger order needs a second finance approver; the first cannot approve twice.
    await fin.waitForFunction((id) => /second approver/.test(document.querySelector(`article[data-approval="${id}"] .waiting`)?.textContent || ""), apId);
    assert.match(await fin.textContent(`article[data-approval="${apId}"] .waiting`), /second approver \(1 of 2: fran\)\. You approved it already/);
    assert.equal(await fin.$(`article[data-approval="${apId}"] .approve`), null, "no second vote by the same person");
    const fin2 = await newPage(b);
    await signIn(fin2, srv.url, tokens.finance2);
    await fin2.click("#nav a[data-page=approvals]");
    await fin2.waitForSelector(`article[data-approval="${apId}"] .approve`);
    await fin2.click(`article[data-approval="${apId}"] .approve`);
    await fin2.waitForSelector(`article[data-approval="${apId}"] header .st-executed`);
  } else {
    await fin.waitForSelector(`article[data-approval="${apId}"] header .st-executed`);
  }
  const ap = await srv.api(srv.admin, `/approvals/${apId}`);
  assert.equal(ap.body.approval.status, "executed");
  const caseId = ap.body.approval.case_id;
  if (caseId) {
    // The re-scan after the execution follows its end by a moment.
    let d;
    for (let i = 0; i < 100; i++) {
      d = await srv.api(srv.admin, `/cases/${caseId}`);
      if (d.body.case.status === "resolved") break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.equal(d.body.case.status, "resolved", "the case resolved after the action ran");
  }

  // The admin sees the conversation and the decision in the audit log.
  const admin = await newPage(b);
  await signIn(admin, srv.url, srv.admin);
  await admin.goto(`${srv.url}/#/audit?kind=approval.`);
  await admin.waitForSelector("#verify .ok");
  await admin.waitForFunction(() => document.querySelectorAll("#audit-rows td code").length > 0);
  const kinds = await admin.$$eval("#audit-rows td code", (els) => els.map((e) => e.textContent));
  assert.ok(kinds.includes("approval.requested") && kinds.includes("approval.decided"), `${kinds}`);
  await shot(admin, "12-audit-after-chat");
  for (const p of [rep, fin, admin]) assert.deepEqual(p.problems, []);
  for (const p of [rep, fin, admin]) await p.context().close();
});
