// Shared pieces of the browser tests: a real `order-copilot serve` on an ephemeral port
// with demo data (its first-start admin token read from its output), more tokens made
// with `order-copilot token create`, and Debian's headless Chromium driven by
// playwright-core.
//
// Environment: ORDER_COPILOT_BIN (the binary; default ../../target/debug/order-copilot),
// CHROMIUM (default /usr/bin/chromium), E2E_SCREENSHOTS (where page screenshots go;
// default ../../target/e2e-screenshots, git-ignored).

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
export const BIN = process.env.ORDER_COPILOT_BIN || join(root, "target/debug/order-copilot");
export const SHOTS = process.env.E2E_SCREENSHOTS || join(root, "target/e2e-screenshots");

/** Start the server; resolves once it listens. */
export async function startServer({ orders = 1500, extraEnv = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "oc-e2e-"));
  const args = ["serve", "--addr", "127.0.0.1:0", "--data-dir", join(dir, "data"), "--orders", String(orders), "--scan-interval", "3600"];
  const env = { ...process.env, ORDER_COPILOT_LOG: "warn", ...extraEnv };
  delete env.DATABASE_URL;
  const child = spawn(BIN, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const { url, admin } = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start in 180 s:\n${out}\n${err}`)), 180_000);
    child.on("exit", (code) => fail(new Error(`server exited with ${code}:\n${out}\n${err}`)));
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      const t = out.match(/\b(oc_[0-9a-f]+)\b/);
      if (m && t) {
        clearTimeout(timer);
        ok({ url: m[1], admin: t[1] });
      }
    });
  });
  return {
    url,
    admin,
    dir,
    /** A new API token for a role (the CLI, on the same data directory). */
    token(name, role) {
      return execFileSync(BIN, ["token", "create", "--role", role, "--name", name, "--data-dir", join(dir, "data")], { env }).toString().trim();
    },
    async api(token, path, init = {}) {
      const r = await fetch(`${url}/api${path}`, {
        ...init,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...(init.headers || {}) },
      });
      const text = await r.text();
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      return { status: r.status, body };
    },
    async stop() {
      child.removeAllListeners("exit");
      const done = new Promise((ok) => child.once("exit", ok));
      child.kill("SIGTERM");
      await done;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Launch headless Chromium. */
export async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

/** A fresh page (its own sessionStorage) that fails the test on any CSP violation or page error. */
export async function newPage(b, { width = 1366, height = 860 } = {}) {
  const context = await b.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/Failed to load resource: the server responded with a status of (401|403|404|409)/.test(m.text()))
      page.problems.push(`console: ${m.text()}`);
  });
  return page;
}

/** Sign in through the form. */
export async function signIn(page, url, token) {
  await page.goto(`${url}/`);
  await page.fill("#token", token);
  await page.press("#token", "Enter");
  await page.waitForSelector("#signout");
}

/** Save a screenshot of the page as NAME.png. */
export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}
