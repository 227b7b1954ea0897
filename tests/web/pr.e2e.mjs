// The board shows an issue's pull request (issue 12), in headless Chromium. Run by
// crates/agentd/tests/web_e2e.rs, which starts the real server and a fake GitHub, and
// completes a task with a pushed branch so the server opens a pull request. Env:
//   AGENTD_URL, AGENTD_TOKEN, ISSUE_TITLE, PR_URL, SHOT_DIR, PLAYWRIGHT_PREFIX.
// Checks the card's PR badge (a link to the pull request, with its state), the issue
// page's pull request box and the task panel's, and a reviewer's comment styled as from
// the forge. Exits non-zero with a message on the first failed step.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing env ${k}`);
  return v;
};
const url = env("AGENTD_URL");
const token = env("AGENTD_TOKEN");
const title = env("ISSUE_TITLE");
const prUrl = env("PR_URL");
const shots = env("SHOT_DIR");
const require = createRequire(join(env("PLAYWRIGHT_PREFIX"), "package.json"));
const { chromium } = require("playwright-core");

mkdirSync(shots, { recursive: true });
const step = (what) => console.log(`step: ${what}`);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const failures = [];
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") failures.push(`console error: ${m.text()}`); });

  step("sign in");
  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#signin");
  await page.waitForSelector(".board");

  step("the card links to its pull request with its state");
  const card = page.locator(".column[data-status=in_review] .card", { hasText: title });
  const badge = card.locator("a.badge.pr-open");
  await badge.waitFor();
  const href = await badge.getAttribute("href");
  if (href !== prUrl) throw new Error(`card PR link ${href}, want ${prUrl}`);
  const text = await badge.textContent();
  if (!text.startsWith("PR #1 open")) throw new Error(`card PR badge says ${text}`);
  if ((await badge.getAttribute("rel")) !== "noopener noreferrer") throw new Error("the PR link lacks rel=noopener");
  await page.screenshot({ path: join(shots, "board-pr-1280.png"), fullPage: true });

  step("the issue page shows it, and the task panel too");
  await card.locator("a.card-title").click();
  await page.waitForSelector(`.pr-box a.badge.pr-open[href="${prUrl}"]`);
  await page.waitForSelector(`section.task a.badge.pr-open[href="${prUrl}"]`);
  await page.waitForSelector(".comment.by-system:has-text('Opened pull request #1')");

  step("a reviewer's comment arrives styled as from the forge, and the badge shows the review");
  await page.waitForSelector(".comment.by-forge:has-text('Please rename foo')", { timeout: 30000 });
  await page.waitForSelector(".pr-box a.badge.pr-open:has-text('changes requested')");
  await page.screenshot({ path: join(shots, "issue-pr-1280.png"), fullPage: true });

  if (failures.length) throw new Error(failures.join("\n"));
  console.log("pr e2e: ok");
} catch (e) {
  console.error(`pr e2e FAILED: ${e.message}`);
  if (failures.length) console.error(failures.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
