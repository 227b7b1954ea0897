// OIDC single sign-on on the web board (issue 15 layer 7), in headless Chromium. Run by
// crates/agentd/tests/web_e2e.rs, which starts the OpenID provider (tests/oidc/
// provider.mjs, npm oidc-provider) and the real server configured for it, with the
// workspace's OIDC default role set to member. Env: AGENTD_URL, OIDC_LOGIN (the login
// name at the provider's development login page; the email is LOGIN@example.com when it
// has no @), OIDC_NAME (the button's provider name), SHOT_DIR, PLAYWRIGHT_PREFIX.
// The sign-in form shows "Sign in with NAME"; clicking it goes to the provider, whose
// login and consent pages are filled in; the provider sends the browser back and the
// board is signed in as that email (the session cookie is HttpOnly), a member of the
// workspace. Exits non-zero with a message on the first failed step.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing env ${k}`);
  return v;
};
const url = env("AGENTD_URL");
const login = env("OIDC_LOGIN");
const name = env("OIDC_NAME");
const email = login.includes("@") ? login : `${login}@example.com`;
const shots = env("SHOT_DIR");
const require = createRequire(join(env("PLAYWRIGHT_PREFIX"), "package.json"));
const { chromium } = require("playwright-core");

mkdirSync(shots, { recursive: true });
const step = (what) => console.log(`step: ${what}`);
const fail = (msg) => { throw new Error(msg); };
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const failures = [];
let page;
try {
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));

  step(`the sign-in form offers "Sign in with ${name}"`);
  await page.goto(url);
  const button = page.locator("#signin-oidc");
  await button.waitFor();
  const label = (await button.textContent()).trim();
  if (label !== `Sign in with ${name}`) fail(`the button says ${JSON.stringify(label)}`);
  await page.screenshot({ path: join(shots, "oidc-signin-1280.png") });

  step("the button goes to the provider's login page");
  await button.click();
  await page.waitForSelector("input[name=login]");
  if (page.url().startsWith(url)) fail(`still on the board: ${page.url()}`);
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any password");
  await page.click("button[type=submit]");

  step("the provider asks for consent");
  await page.waitForSelector("input[name=prompt][value=consent]", { state: "attached" });
  await page.click("button[type=submit]");

  step("back on the board, signed in as the provider's user");
  await page.waitForURL((u) => u.toString().startsWith(url));
  await page.waitForSelector(`#whoami:has-text('${email}')`);
  if (await page.evaluate(() => document.cookie.includes("agentd_session"))) {
    fail("the session cookie is readable by scripts");
  }
  const session = await page.evaluate(async () => (await fetch("/api/v1/session")).json());
  if (session.user?.email !== email) fail(`the session is ${JSON.stringify(session)}`);
  const roles = (session.memberships || []).map((m) => m.role);
  if (roles.join() !== "member") fail(`expected one membership as member: ${JSON.stringify(session)}`);
  await page.screenshot({ path: join(shots, "oidc-signed-in-1280.png") });
  if (failures.length) fail(failures.join("\n"));
  step("done");
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  if (page) await page.screenshot({ path: join(shots, "oidc-failure.png") }).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
