// Accounts on the web board (issue 15), in headless Chromium. Run by
// crates/agentd/tests/web_e2e.rs, which starts the real server and daemon (a stand-in
// `claude` that completes every run), makes OWNER_EMAIL/OWNER_PASSWORD the owner of the
// workspace and an agent AGENT_NAME in it. Env: AGENTD_URL, OWNER_EMAIL, OWNER_PASSWORD,
// AGENT_NAME, SHOT_DIR, PLAYWRIGHT_PREFIX.
// The owner signs in with the password form (a wrong password first: the same message as
// an unknown email), sees the admin pages, and invites a second person by link as a
// member. The second person opens the link in another browser, makes an account there,
// joins as a member, does not see the admin pages and is refused on them, and creates
// and assigns an issue that the agent completes. A POST with the session cookie but
// without the CSRF header is 403. The owner's audit page (the workspace's entries) shows
// the invitation made and accepted and the member added. Sign-out ends the session (a reload asks to sign in). Exits non-zero with a
// message on the first failed step.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing env ${k}`);
  return v;
};
const url = env("AGENTD_URL");
const ownerEmail = env("OWNER_EMAIL");
const ownerPassword = env("OWNER_PASSWORD");
const agentName = env("AGENT_NAME");
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
const pages = [];
function watch(page, allow) {
  pages.push(page);
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (allow.some((a) => m.text().includes(a))) return;
    failures.push(`console error: ${m.text()}`);
  });
}

try {
  const owner = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  watch(owner, ["status of 401"]);

  step("the owner signs in with a password (a wrong one first)");
  await owner.goto(url);
  await owner.fill("#email", ownerEmail);
  await owner.fill("#password", "not the password");
  await owner.click("#signin-password");
  await owner.waitForSelector("#signin-error:has-text('wrong email or password')");
  await owner.fill("#password", ownerPassword);
  await owner.click("#signin-password");
  await owner.waitForSelector(".board");
  if (await owner.evaluate(() => localStorage.getItem("agentd.token"))) fail("a password sign-in stored a token");
  if (await owner.evaluate(() => document.cookie.includes("agentd_session"))) fail("the session cookie is readable by scripts");
  await owner.waitForSelector("#whoami:has-text('" + ownerEmail + "')");
  await owner.screenshot({ path: join(shots, "accounts-board-owner-1280.png") });

  step("the owner sees the admin pages and makes a member invitation link");
  await owner.waitForSelector("a[data-nav=members]:visible");
  await owner.click("a[data-nav=members]");
  await owner.waitForSelector("#members tr[data-email]");
  await owner.selectOption("#invite-role", "member");
  await owner.click("#invite");
  const inviteUrl = (await owner.locator("#invite-url").textContent()).trim();
  if (!/\/#\/invite\/agi_[0-9a-f]+$/.test(inviteUrl)) fail(`invitation url: ${inviteUrl}`);
  await owner.waitForSelector("#invitations tr[data-invitation-id]");
  await owner.screenshot({ path: join(shots, "accounts-members-1280.png"), fullPage: true });

  step("a second person opens the link in another browser and joins as a member");
  const member = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  watch(member, ["status of 403"]);
  await member.goto(inviteUrl);
  await member.fill("#join-email", "second@example.com");
  await member.fill("#join-name", "Second Person");
  await member.fill("#join-password", "a long enough password");
  await member.click("#join");
  await member.waitForSelector(".board");
  if (member.url().includes("agi_")) fail("the invitation stayed in the address bar");

  step("the member does not see the admin pages, and is refused on them");
  if (await member.locator("a[data-nav=members]").isVisible()) fail("a member sees the Members link");
  if (await member.locator("a[data-nav=audit]").isVisible()) fail("a member sees the Audit link");
  await member.goto(`${url}/#/members`);
  await member.waitForSelector("#members-error:has-text('admin role')");
  await member.goto(`${url}/#/audit`);
  await member.waitForSelector("#audit-error:has-text('admin role')");

  step("the link works once");
  const third = await (await browser.newContext()).newPage();
  watch(third, ["status of 409"]);
  await third.goto(inviteUrl);
  await third.fill("#join-email", "third@example.com");
  await third.fill("#join-password", "a long enough password");
  await third.click("#join");
  await third.waitForSelector("#invite-error:has-text('already used')");

  step("a POST with the session cookie but no CSRF header is 403");
  const csrfless = await member.evaluate(async () => {
    const r = await fetch("/api/v1/workspaces", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: "sneaky" }) });
    return r.status;
  });
  if (csrfless !== 403) fail(`a CSRF-less POST got ${csrfless}`);

  step("the member creates and assigns an issue; the agent completes it");
  await member.goto(`${url}/#/`);
  await member.click("details.create summary");
  await member.fill(".new-issue input[name=title]", "Joined and working");
  await member.selectOption(".new-issue select[name=assignee]", { label: agentName });
  await member.click(".new-issue button[type=submit]");
  await member.locator(".column[data-status=in_review] .card", { hasText: "Joined and working" })
    .locator(".badge.task-completed").waitFor({ timeout: 60000 });
  await member.screenshot({ path: join(shots, "accounts-board-member-1280.png"), fullPage: true });

  step("the owner's audit page shows the invitation and the new member");
  await owner.goto(`${url}/#/audit`);
  for (const action of ["invitation.create", "invitation.accept", "member.add"]) {
    await owner.waitForSelector(`#audit tr[data-action='${action}']`);
  }
  await owner.screenshot({ path: join(shots, "accounts-audit-1280.png"), fullPage: true });

  step("sign-out ends the session: a reload asks to sign in");
  await owner.click("#signout");
  await owner.waitForSelector("#email");
  await owner.reload();
  await owner.waitForSelector("#email");

  if (failures.length) fail(failures.join("\n"));
  console.log("accounts e2e: ok");
} catch (e) {
  console.error(`accounts e2e FAILED: ${e.stack || e.message}`);
  for (const [n, p] of pages.entries()) {
    if (!p.isClosed()) await p.screenshot({ path: join(shots, `accounts-failure-${n}.png`), fullPage: true }).catch(() => {});
  }
  if (failures.length) console.error(failures.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
