// The web board in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core). Run by crates/agentd/tests/web_e2e.rs, which starts the real server
// and daemon and passes:
//   AGENTD_URL, AGENTD_TOKEN, AGENT_NAME, SHOT_DIR, PLAYWRIGHT_PREFIX (its node_modules),
//   DIFF_ISSUE (an issue whose task was completed with a diff, by a scripted daemon).
// Signs in, creates an issue assigned to the agent through the UI, watches the task's log
// stream in on the issue page and the card land in "In review" on the board, in a second
// browser page too (live updates without reloading); moves, edits and comments on it;
// cancels a running task and retries it; deletes the runtime and rebinds the agent to the
// healed one; shows a task's diff (diffstat, per-file collapsible diff, hostile HTML kept
// as text, the truncation marker); and takes screenshots at 1280 and 390 px wide. Exits non-zero with a message on the first failed step.

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
const agentName = env("AGENT_NAME");
const diffIssue = env("DIFF_ISSUE");
const shots = env("SHOT_DIR");
const require = createRequire(join(env("PLAYWRIGHT_PREFIX"), "package.json"));
const { chromium } = require("playwright-core");

mkdirSync(shots, { recursive: true });
const step = (what) => console.log(`step: ${what}`);
const TIMEOUT = 20000;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  // Playwright gives each launch a fresh, temporary user-data-dir of its own.
});
const failures = [];
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
  // The one expected error: the browser logs the 401 of the wrong-token sign-in.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("status of 401")) failures.push(`console error: ${m.text()}`);
  });

  step("sign in with a wrong token, then the right one");
  await page.goto(url);
  await page.fill("#token", "agd_wrong");
  await page.click("#signin");
  await page.waitForSelector("#signin-error:has-text('Sign-in failed')");
  await page.fill("#token", token);
  await page.click("#signin");
  await page.waitForSelector(".board");
  if (page.url().includes(token)) throw new Error("the token appeared in the URL");
  const stored = await page.evaluate(() => sessionStorage.getItem("agentd.token"));
  if (stored !== token) throw new Error("the token is not in session storage");

  step("a second browser page follows along live");
  const watcher = await ctx.newPage();
  watcher.setDefaultTimeout(TIMEOUT);
  await watcher.goto(url); // same tab session storage is per page: sign in there too
  await watcher.fill("#token", token);
  await watcher.click("#signin");
  await watcher.waitForSelector(".board");
  await watcher.waitForSelector(".live.on");
  await page.bringToFront(); // a background tab's timers are throttled

  step("create an issue assigned to the agent");
  await page.click("details.create summary");
  await page.fill(".new-issue input[name=title]", "Write hello.txt");
  await page.fill(".new-issue textarea[name=description]", "Create hello.txt and show it.");
  await page.selectOption(".new-issue select[name=assignee]", { label: agentName });
  await page.click(".new-issue button[type=submit]");
  const card = page.locator(".card", { hasText: "Write hello.txt" });
  await card.waitFor();
  // The form keeps To do and the agent for the next issue (only the text is cleared).
  const keptStatus = await page.locator(".new-issue select[name=status]").inputValue();
  if (keptStatus !== "todo") throw new Error(`the new-issue form reset its status to ${keptStatus}`);
  const keptAgent = await page.locator(".new-issue select[name=assignee] option:checked").textContent();
  if (keptAgent !== agentName) throw new Error(`the new-issue form reset its assignee to ${keptAgent}`);
  const keptTitle = await page.locator(".new-issue input[name=title]").inputValue();
  if (keptTitle !== "") throw new Error("the new-issue form kept the last title");

  step("the watcher sees the new card without reloading");
  await watcher.locator(".card", { hasText: "Write hello.txt" }).waitFor();

  step("open the issue and watch the log stream in");
  await card.locator("a.card-title").click();
  await page.waitForSelector("section.task");
  // The stand-in agent prints its lines slowly: the first message shows before the last.
  await page.waitForSelector("ol.log li.msg-tool_use");
  const early = await page.locator("ol.log li.msg").count();
  await page.waitForSelector("ol.log li.msg-text:has-text('MOCK-DONE: wrote and read hello.txt')");
  const late = await page.locator("ol.log li.msg").count();
  if (!(late > early)) throw new Error(`the log did not stream in (${early} then ${late} messages)`);
  await page.waitForSelector("section.task[data-status=completed]");
  await page.waitForSelector(".comment.by-agent:has-text('MOCK-DONE')");
  await page.waitForSelector("section.task .usage li");
  const branch = await page.locator("section.task dd code").first().textContent();
  if (!branch || branch === "—") throw new Error("no branch shown on the task");
  await page.screenshot({ path: join(shots, "issue-1280.png"), fullPage: true });

  step("the card moved to In review, on both pages");
  await page.click("a.brand");
  await page.locator(".column[data-status=in_review] .card", { hasText: "Write hello.txt" }).waitFor();
  await page.locator(".column[data-status=in_review] .card", { hasText: "Write hello.txt" }).locator(".badge.task-completed").waitFor();
  await watcher.locator(".column[data-status=in_review] .card", { hasText: "Write hello.txt" }).waitFor();
  await page.screenshot({ path: join(shots, "board-1280.png"), fullPage: true });

  step("move the card to Done with its control; the watcher follows");
  await page.locator(".column[data-status=in_review] .card", { hasText: "Write hello.txt" }).locator("select").selectOption("done");
  await page.locator(".column[data-status=done] .card", { hasText: "Write hello.txt" }).waitFor();
  await watcher.locator(".column[data-status=done] .card", { hasText: "Write hello.txt" }).waitFor();

  step("edit the issue and comment on it");
  await page.locator(".column[data-status=done] .card a.card-title", { hasText: "Write hello.txt" }).click();
  await page.fill(".edit textarea", "Create hello.txt and show it. Edited in the browser.");
  await page.click(".edit button[type=submit]");
  await page.fill(".comment-form textarea", "Thanks, looks good!");
  await page.click(".comment-form button[type=submit]");
  await page.waitForSelector(".comment.by-member:has-text('Thanks, looks good!')");
  await watcher.locator(".column[data-status=done] .card a.card-title", { hasText: "Write hello.txt" }).click();
  await watcher.waitForSelector(".comment.by-member:has-text('Thanks, looks good!')");
  const desc = await watcher.inputValue(".edit textarea");
  if (!desc.includes("Edited in the browser")) throw new Error(`the watcher shows an old description: ${desc}`);

  step("cancel a running task, then retry it; a half-typed title survives live refreshes");
  await page.click("a.brand");
  await page.click("details.create summary");
  await page.fill(".new-issue input[name=title]", "Slow task");
  await page.selectOption(".new-issue select[name=assignee]", { label: agentName });
  await page.click(".new-issue button[type=submit]");
  await page.locator(".card a.card-title", { hasText: "Slow task" }).click();
  await page.waitForSelector("section.task[data-status=running]");
  await page.fill(".edit input.title-input", "Slow task, renamed but not saved yet");
  const badge = page.locator("section.task[data-status=running] .badge[data-task-status=running]");
  const t0 = await badge.textContent();
  await page.waitForFunction((before) => {
    const b = document.querySelector("section.task[data-status=running] .badge[data-task-status=running]");
    return b && b.textContent !== before;
  }, t0, { timeout: 5000 }).catch(() => { throw new Error(`the running badge did not tick (${t0})`); });
  await page.click("section.task[data-status=running] button:has-text('Cancel')");
  await page.waitForSelector("section.task[data-status=cancelled]");
  await page.click("section.task[data-status=cancelled] button:has-text('Retry')");
  await page.waitForFunction(() => document.querySelectorAll("section.task").length === 2);
  await page.waitForSelector("section.task:first-of-type[data-status=completed]", { timeout: 30000 });
  const kept = await page.inputValue(".edit input.title-input");
  if (kept !== "Slow task, renamed but not saved yet") throw new Error(`live refresh clobbered the title being edited: ${kept}`);
  await page.screenshot({ path: join(shots, "issue-retried-1280.png"), fullPage: true });
  await page.click(".edit button[type=submit]");
  await watcher.click("a.brand");
  await watcher.locator(".card", { hasText: "Slow task, renamed" }).locator(".badge.task-completed").waitFor();

  step("drag a card to another column; the watcher follows");
  await page.click("a.brand");
  const slow = page.locator(".card", { hasText: "Slow task, renamed" });
  await slow.dragTo(page.locator(".column[data-status=done]"));
  await page.locator(".column[data-status=done] .card", { hasText: "Slow task, renamed" }).waitFor();
  await watcher.locator(".column[data-status=done] .card", { hasText: "Slow task, renamed" }).waitFor();

  step("delete the runtime: the daemon re-registers and the page shows the new one");
  await page.click("[data-nav=runtimes]");
  const row = page.locator("tr[data-provider=claude]");
  await row.locator(".rt-online").waitFor();
  // Every row says how its agent runs are isolated (this daemon reports no state yet: "-").
  const sandbox = await row.locator("[data-sandbox]").getAttribute("data-sandbox");
  if (!["bwrap", "off", "unavailable", "-"].includes(sandbox)) throw new Error(`sandbox badge: ${sandbox}`);
  const oldId = await row.getAttribute("data-runtime-id");
  await page.screenshot({ path: join(shots, "runtimes-1280.png"), fullPage: true });
  page.once("dialog", (d) => d.accept());
  await row.locator("button.danger").click();
  const healed = page.locator(`tr[data-provider=claude]:not([data-runtime-id="${oldId}"])`);
  await healed.locator(".rt-online").waitFor();
  const newId = await healed.getAttribute("data-runtime-id");

  step("edit the agent: rebind it to the new runtime and rename it");
  await page.click("[data-nav=agents]");
  const agent = page.locator(".agent", { hasText: agentName });
  await agent.locator("text=deleted runtime").waitFor();
  await agent.locator("button", { hasText: "Edit" }).click();
  await page.fill(".agent .agent-form input[aria-label=Name]", `${agentName}-2`);
  await page.selectOption(".agent .agent-form select[aria-label=Runtime]", newId);
  await page.click(".agent .agent-form button[type=submit]");
  await page.locator(".agent h3", { hasText: `${agentName}-2` }).waitFor();
  await page.locator(".agent", { hasText: "claude" }).locator("text=deleted runtime").waitFor({ state: "detached" });
  await page.screenshot({ path: join(shots, "agents-1280.png"), fullPage: true });

  step("a task's diff: diffstat on the card and the task, per-file diff, HTML kept as text");
  await page.click("a.brand");
  const diffCard = page.locator(".card", { hasText: "Show the diff" });
  const cardCounts = await diffCard.locator(".diff-counts").textContent();
  if (cardCounts !== "+13 −2") throw new Error(`card diffstat: ${cardCounts}`);
  await diffCard.locator("a.card-title").click();
  await page.waitForSelector("section.task[data-status=completed]");
  const stat = await page.locator("section.task .facts .diffstat").textContent();
  if (stat !== "4 files changed +13 −2") throw new Error(`task diffstat: ${stat}`);
  // The newest task's diff opens by itself; one box per file of the patch.
  await page.waitForSelector("details.task-diff[open] details.diff-file");
  const paths = await page.locator(".diff-file").evaluateAll((els) => els.map((e) => e.dataset.path));
  if (JSON.stringify(paths) !== JSON.stringify(["src/lib.rs", "docs/<i>notes</i>.md", "logo.png"])) {
    throw new Error(`diff files: ${JSON.stringify(paths)}`);
  }
  const lib = page.locator(".diff-file[data-path='src/lib.rs']");
  if ((await lib.locator("summary").textContent()) !== "src/lib.rs +3 −1") {
    throw new Error(`file summary: ${await lib.locator("summary").textContent()}`);
  }
  await lib.locator(".ln-add", { hasText: "<img src=x onerror=" }).waitFor();
  await lib.locator(".ln-add", { hasText: "<script>window.__pwned=2</script>" }).waitFor();
  await lib.locator(".ln-del", { hasText: "-fn old() {}" }).waitFor();
  if ((await lib.locator(".ln-hunk").count()) !== 2) throw new Error("two hunk headers");
  if ((await lib.locator(".ln-ctx").count()) !== 2) throw new Error("two context lines");
  const injected = await page.evaluate(() => ({
    pwned: window.__pwned,
    elements: document.querySelectorAll(".diff img, .diff script, .diff i").length,
  }));
  if (injected.pwned !== undefined || injected.elements) {
    throw new Error(`the patch's HTML was interpreted: ${JSON.stringify(injected)}`);
  }
  const colors = await page.evaluate(() => {
    const bg = (sel) => getComputedStyle(document.querySelector(sel)).backgroundColor.match(/\d+/g).map(Number);
    return { add: bg(".ln-add"), del: bg(".ln-del") };
  });
  if (!(colors.add[1] > colors.add[0] && colors.del[0] > colors.del[1])) {
    throw new Error(`added lines are not green, removed not red: ${JSON.stringify(colors)}`);
  }
  const marker = await page.locator(".diff-marker").textContent();
  if (marker !== "… [diff truncated: 1234 more bytes not shown]") throw new Error(`marker: ${marker}`);
  await page.locator(".diff-truncated").waitFor();
  // The file cut from the patch is still listed with its counts.
  await page.locator(".diff-rest li", { hasText: "src/cut.rs" }).waitFor();
  // Collapsible per file.
  await lib.locator("summary").click();
  if (await lib.locator(".diff-lines").isVisible()) throw new Error("the file did not collapse");
  await lib.locator("summary").click();
  await lib.locator(".diff-lines").waitFor();
  await page.screenshot({ path: join(shots, "diff-1280.png"), fullPage: true });

  step("390 px wide: no horizontal overflow on any page");
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, name, ready] of [
    ["#/", "board", ".board .card"],
    [`#/issues/${await issueId(page)}`, "issue", "section.task"],
    ["#/runtimes", "runtimes", "tr[data-provider]"],
    ["#/agents", "agents", ".agent"],
    [`#/issues/${diffIssue}`, "diff", "details.task-diff[open] .diff-file .ln-add"],
  ]) {
    await page.goto(`${url}/${hash}`);
    await page.waitForSelector(ready);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    if (width > 390) throw new Error(`${name} overflows at 390 px: scrollWidth ${width}`);
    // A stray null/undefined rendered as text is a bug (the issue page shows agent output).
    if (name !== "issue" && name !== "diff") {
      const text = await page.evaluate(() => document.getElementById("main").innerText);
      const bad = text.match(/\b(null|undefined|NaN)\b/);
      if (bad) throw new Error(`${name} shows "${bad[1]}": ${text}`);
    }
    await page.screenshot({ path: join(shots, `${name}-390.png`), fullPage: true });
  }
  if (failures.length) throw new Error(failures.join("\n"));
  console.log("board e2e: ok");
} catch (e) {
  console.error(`board e2e FAILED: ${e.message}`);
  if (failures.length) console.error(failures.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function issueId(page) {
  await page.goto(`${url}/#/`);
  const href = await page.locator(".card a.card-title", { hasText: "Write hello.txt" }).getAttribute("href");
  return href.split("/").pop();
}
