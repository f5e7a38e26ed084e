// The app shell: sign in with an API token, the navigation the signed-in role may use,
// and a hash router (#/queue, #/chat, #/approvals, #/audit, #/intel) that renders one page
// into <main>. Each page module exports `render(root, ctx, params)` and may return a
// cleanup function that runs when the user leaves the page.

import { ApiError, get, onUnauthorized, session } from "./api.js";
import { h, mount, toast } from "./dom.js";

performance.mark("oc:start");

const PAGES = {
  queue: { title: "Queue", load: () => import("./queue.js") },
  chat: { title: "Chat", load: () => import("./chat.js"), needs: "chat" },
  approvals: { title: "Approvals", load: () => import("./approvals.js") },
  audit: { title: "Audit", load: () => import("./audit.js"), needs: "read_audit" },
  intel: { title: "Intelligence", load: () => import("./intel.js") },
};

const main = document.getElementById("main");
let ctx = null;
let cleanup = null;
let rendering = 0;

/** What the signed-in user may do, from /api/me. */
function context(me) {
  const perms = new Set(me.permissions || []);
  return {
    me,
    can: (p) => perms.has(p),
    /** The owner role of a case, or a role that may decide any case. */
    mayDecide: (c) => c.owner_role === me.role || perms.has("decide_any_case"),
    /**
     * A role named by the approval request — and, to approve, not its requester (unless the
     * policy allowed it) and not someone who already approved. The server decides anyway.
     */
    mayReject: (a) => (a.approver_roles || []).includes(me.role),
    mayApprove: (a) =>
      (a.approver_roles || []).includes(me.role) &&
      (a.requester_may_approve || a.requested_by !== me.name) &&
      !(a.decisions || []).some((d) => d.by === me.name),
    nav: (hash) => {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
    /** Refresh the pending-approvals badge. */
    refreshBadge,
  };
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const [page, ...rest] = (path || "queue").split("/");
  return { page: PAGES[page] ? page : "queue", rest, params: new URLSearchParams(query || "") };
}

async function route() {
  if (!ctx) return signIn();
  const { page, rest, params } = parseHash();
  const def = PAGES[page];
  if (def.needs && !ctx.can(def.needs)) {
    location.hash = "#/queue";
    return;
  }
  const ticket = ++rendering;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${def.title} · order-copilot`;
  let mod;
  try {
    mod = await def.load();
  } catch (e) {
    mount(main, h("p", { class: "empty error" }, `Could not load the page: ${e.message}`));
    return;
  }
  if (ticket !== rendering) return;
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  main.replaceChildren();
  main.className = `page-${page}`;
  try {
    cleanup = await mod.render(main, ctx, params, rest);
  } catch (e) {
    showError(e);
  }
}

function showError(e) {
  if (e instanceof ApiError && e.status === 401) return;
  toast(e instanceof ApiError ? `${e.message} (${e.code})` : String(e.message || e), "error");
}

window.addEventListener("unhandledrejection", (ev) => showError(ev.reason));

function shell(me) {
  const nav = document.getElementById("nav");
  mount(
    nav,
    Object.entries(PAGES)
      .filter(([, p]) => !p.needs || ctx.can(p.needs))
      .map(([key, p]) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: `#/${key}`, dataset: { page: key } },
            p.title,
            key === "approvals" ? h("span", { class: "badge", id: "badge", hidden: true }) : null,
          ),
        ),
      ),
  );
  mount(
    document.getElementById("who"),
    h("span", { class: "user" }, me.name),
    h("span", { class: "role" }, me.role.replaceAll("_", " ")),
    h("button", { class: "btn small", id: "signout", onclick: signOut }, "Sign out"),
  );
  document.getElementById("top").hidden = false;
}

let badgeTimer = null;
async function refreshBadge() {
  if (!ctx) return;
  try {
    const r = await get("/approvals", { status: "pending", mine: true });
    const b = document.getElementById("badge");
    if (!b) return;
    const n = r.items.length;
    b.textContent = n >= 200 ? "200+" : String(n);
    b.hidden = n === 0;
    b.setAttribute("aria-label", `${n} waiting for you`);
  } catch {
    /* the badge is a convenience; the page itself reports errors */
  }
}

function signIn(message) {
  ctx = null;
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  document.getElementById("top").hidden = true;
  main.className = "page-signin";
  document.title = "Sign in · order-copilot";
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "oc_…",
    required: true,
    maxlength: 256,
  });
  const err = h("p", { class: "field-error", id: "signin-error", role: "alert" }, message || "");
  const button = h("button", { class: "btn primary", type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin card", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, h("img", { src: "/icon.svg", alt: "", width: 28, height: 28 }), " order-copilot"),
    h("p", { class: "muted" }, "Sign in with your API token. It stays in this tab only and is forgotten when you close it."),
    h("label", { for: "token" }, "API token"),
    input,
    err,
    button,
    h("p", { class: "muted hint-cmd" }, "No token? An administrator makes one with ", h("code", {}, "order-copilot token create --role ROLE --name NAME"), "."),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    button.disabled = true;
    err.textContent = "";
    try {
      const me = await get("/me", null, { token });
      session.set(token);
      start(me);
    } catch (x) {
      err.textContent =
        x instanceof ApiError && x.status === 401
          ? /expired/.test(x.message)
            ? x.message
            : "That token is unknown or revoked."
          : x instanceof ApiError && x.status === 429
            ? "Too many failed attempts from this address; wait a minute."
            : `Could not sign in: ${x.message}`;
      button.disabled = false;
      input.select();
    }
  });
  mount(main, form);
  input.focus();
}

function signOut() {
  session.clear();
  clearInterval(badgeTimer);
  history.replaceState(null, "", "#/queue");
  signIn();
}

function start(me) {
  ctx = context(me);
  shell(me);
  clearInterval(badgeTimer);
  badgeTimer = setInterval(refreshBadge, 30000);
  // The badge after the page: the page's own data goes first.
  route().finally(refreshBadge);
}

onUnauthorized.addEventListener("unauthorized", () => {
  if (!ctx) return;
  session.clear();
  clearInterval(badgeTimer);
  signIn("Your session ended (the token was revoked or is unknown). Sign in again.");
});

window.addEventListener("hashchange", route);

async function boot() {
  const token = session.token;
  if (!token) return signIn();
  // Load the page's module and its first data while /api/me answers.
  const { page, params } = parseHash();
  PAGES[page]
    .load()
    .then((m) => m.prefetch?.(params))
    .catch(() => {});
  try {
    start(await get("/me", null, { token }));
  } catch (e) {
    session.clear();
    signIn(e instanceof ApiError && e.status === 401 ? "" : `Could not reach the server: ${e.message}`);
  }
}

boot();
