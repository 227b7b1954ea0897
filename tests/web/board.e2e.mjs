// The web board in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core). Run by crates/agentd/tests/web_e2e.rs, which starts the real server
// and daemon and passes:
//   AGENTD_URL, AGENTD_TOKEN, AGENT_NAME, SHOT_DIR, PLAYWRIGHT_PREFIX (its node_modules),
//   DIFF_ISSUE (an issue whose task was completed with a diff, by a scripted daemon),
//   GATE_DIR (the stand-in agent's run of a `[gated]` issue waits for GATE_DIR/open;
//   a `[broken]` issue's run exits 1).
// Signs in (the token is kept per browser: a second tab is signed in without asking);
// creates two assigned issues in a row from the form and watches both runs land in
// "In review", one page following the other live; shows "In progress" on the card while
// a gated run waits; a failed run's reason on its card, its error on the issue page and
// in the activity; the tokens of a failed and of a cancelled run; Markdown rendered (and hostile HTML/links kept inert); edit on demand
// (Escape cancels); the activity timeline (comments, runs, status changes, who cancelled,
// who retried) and the transcript's labels; cancel behind a confirmation dialog, retry,
// and a stale page's retry answered 409 already_retried taking the user to the retry;
// the search/filter box (instant, in the URL, kept on reload, "no match" said); a card
// moved with the keyboard keeping focus; the one-click sign-in link (and its reuse
// refused); sign-out; the runtime/agent pages and a task's diff; no horizontal scroll at
// 390 px; and axe-core on every view at 1280 and 390 px in light and dark: any serious
// or critical violation fails the test. Exits non-zero with a message on the first
// failed step.

import { createRequire } from "node:module";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
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
const gateDir = env("GATE_DIR");
const shots = env("SHOT_DIR");
const require = createRequire(join(env("PLAYWRIGHT_PREFIX"), "package.json"));
const { chromium } = require("playwright-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

mkdirSync(shots, { recursive: true });
const step = (what) => console.log(`step: ${what}`);
const TIMEOUT = 20000;
const fail = (msg) => { throw new Error(msg); };

/** The user API from node (the test's own calls, beside the browser's). */
async function apiCall(method, path, body, bearer = token) {
  const headers = { "Content-Type": "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const resp = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  // Playwright gives each launch a fresh, temporary user-data-dir of its own.
});
const failures = [];
const axeReport = []; // "view @ width scheme: N violations" lines
const axeViolations = [];
const openPages = []; // screenshot on failure


/** Runs axe-core in `page` (its source evaluated through the DevTools protocol, which the
 *  page's CSP does not apply to) and records every serious or critical violation. */
async function axeCheck(page, view) {
  await page.evaluate(axeSource);
  const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = res.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const vp = page.viewportSize();
  const scheme = await page.evaluate(() => (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
  const where = `${view} @ ${vp.width}px ${scheme}`;
  axeReport.push(`${where}: ${res.passes === undefined ? "" : ""}${bad.length} serious/critical, ${res.violations.length - bad.length} minor`);
  const minor = res.violations.filter((v) => !bad.includes(v)).map((v) => `${v.id}(${v.impact})`);
  if (minor.length) axeReport[axeReport.length - 1] += `: ${minor.join(", ")}`;
  for (const v of bad) {
    axeViolations.push(`${where}: [${v.impact}] ${v.id}: ${v.help}\n    ${v.nodes.slice(0, 4).map((n) => `${n.target.join(" ")} — ${n.failureSummary.replace(/\n/g, " ")}`).join("\n    ")}`);
  }
}

function watchErrors(page, allow = []) {
  openPages.push(page);
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const text = m.text();
    // The browser logs the expected 401s/409s (a wrong token, a used code, a stale retry).
    if (allow.some((a) => text.includes(a))) return;
    failures.push(`console error: ${text}`);
  });
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  watchErrors(page, ["status of 401", "status of 409"]);

  step("sign in with a wrong token, then the right one");
  await page.goto(url);
  await page.fill("#token", "agd_wrong");
  await page.click("#signin");
  await page.waitForSelector("#signin-error:has-text('Sign-in failed')");
  await page.fill("#token", token);
  await page.click("#signin");
  await page.waitForSelector(".board");
  if (page.url().includes(token)) fail("the token appeared in the URL");
  const stored = await page.evaluate(() => localStorage.getItem("agentd.token"));
  if (stored !== token) fail("the token is not in local storage");

  step("a second tab of the same browser is signed in without asking, and follows along live");
  const watcher = await ctx.newPage();
  watchErrors(watcher, ["status of 409"]);
  await watcher.goto(url);
  await watcher.waitForSelector(".board");
  if (await watcher.locator("#token").count()) fail("the second tab asked for a token");
  await watcher.waitForSelector(".live.on");
  await page.bringToFront(); // a background tab's timers are throttled

  step("create two assigned issues in a row from the form");
  const mdDescription = [
    "# Plan",
    "Some **bold**, some *emphasis* and `inline code`.",
    "",
    "- first point",
    "- second point",
    "",
    "1. one",
    "2. two",
    "",
    "> a quoted line",
    "",
    "```",
    "let x = \"<b>not bold</b>\";",
    "```",
    "",
    "[the docs](https://example.com/docs) and [evil](javascript:window.__pwned=1)",
    "Mail [the team](mailto:team@example.com), see <https://example.org/auto>, not [data](data:text/html,hi) or [relative](/api/v1/me).",
    "<img src=x onerror=\"window.__pwned=2\"> <script>window.__pwned=3</script>",
  ].join("\n");
  await page.click("details.create summary");
  await page.fill(".new-issue input[name=title]", "Write hello.txt");
  await page.fill(".new-issue textarea[name=description]", mdDescription);
  await page.selectOption(".new-issue select[name=assignee]", { label: agentName });
  await page.click(".new-issue button[type=submit]");
  const card = page.locator(".card", { hasText: "Write hello.txt" });
  await card.waitFor();
  // The form keeps To do and the agent for the next issue (only the text is cleared).
  const keptStatus = await page.locator(".new-issue select[name=status]").inputValue();
  if (keptStatus !== "todo") fail(`the new-issue form reset its status to ${keptStatus}`);
  const keptAgent = await page.locator(".new-issue select[name=assignee] option:checked").textContent();
  if (keptAgent !== agentName) fail(`the new-issue form reset its assignee to ${keptAgent}`);
  const keptTitle = await page.locator(".new-issue input[name=title]").inputValue();
  if (keptTitle !== "") fail("the new-issue form kept the last title");
  // The second one straight away, without touching status or agent.
  await page.fill(".new-issue input[name=title]", "Say hello twice");
  await page.click(".new-issue button[type=submit]");
  const card2 = page.locator(".card", { hasText: "Say hello twice" });
  await card2.waitFor();

  step("cards show their key, age (full time on hover), run count and assignee");
  const key1 = await card.getAttribute("data-key");
  if (!/^[A-Z][A-Z0-9]*-\d+$/.test(key1 || "")) fail(`card key: ${key1}`);
  if ((await card.locator(".key").textContent()) !== key1) fail("the key is not shown on the card");
  const when = card.locator(".age time");
  if (!(await when.getAttribute("datetime"))) fail("the card's age has no datetime");
  if (!(await when.getAttribute("title"))) fail("the card's age has no full time on hover");
  if (!/^\d+(s|m|h|d|mo|y)$/.test(await when.textContent())) fail(`card age: ${await when.textContent()}`);
  if ((await card.locator(".assignee").textContent()) !== agentName) fail("the assignee is not on the card");
  const moveLabel = await card.locator("select[data-role=move]").getAttribute("aria-label");
  if (moveLabel !== `Move ${key1} Write hello.txt to…`) fail(`the move control's label: ${moveLabel}`);
  await card.locator(".runs", { hasText: "1 run" }).waitFor();

  step("the watcher sees the new cards without reloading");
  await watcher.locator(".card", { hasText: "Write hello.txt" }).waitFor();
  await watcher.locator(".card", { hasText: "Say hello twice" }).waitFor();

  step("open the first issue: Markdown rendered, hostile HTML and links inert");
  await card.locator("a.card-title").click();
  await page.waitForSelector("#issue-title");
  const d = page.locator(".description .markdown");
  await d.locator("h2", { hasText: "Plan" }).waitFor();
  await d.locator("strong", { hasText: "bold" }).waitFor();
  await d.locator("em", { hasText: "emphasis" }).waitFor();
  await d.locator("p code", { hasText: "inline code" }).waitFor();
  if ((await d.locator("ul > li").count()) !== 2) fail("unordered list");
  if ((await d.locator("ol > li").count()) !== 2) fail("ordered list");
  await d.locator("blockquote", { hasText: "a quoted line" }).waitFor();
  if ((await d.locator("pre code").textContent()) !== "let x = \"<b>not bold</b>\";") fail("fenced code");
  const docs = d.locator("a", { hasText: "the docs" });
  if ((await docs.getAttribute("href")) !== "https://example.com/docs") fail("the http link");
  if ((await docs.getAttribute("rel")) !== "noopener noreferrer") fail("the link lacks rel=noopener noreferrer");
  if ((await d.locator("a", { hasText: "the team" }).getAttribute("href")) !== "mailto:team@example.com") fail("the mailto link");
  if ((await d.locator("a", { hasText: "https://example.org/auto" }).getAttribute("href")) !== "https://example.org/auto") fail("the autolink");
  const hrefs = await d.locator("a").evaluateAll((els) => els.map((e) => e.getAttribute("href")));
  if (hrefs.length !== 3) fail(`links made: ${JSON.stringify(hrefs)}`); // not data:, relative or javascript:
  const inert = await page.evaluate(() => ({
    pwned: window.__pwned,
    elements: document.querySelectorAll(".description img, .description script, .description b, .description a[href^='javascript']").length,
    text: document.querySelector(".description").textContent,
  }));
  if (inert.pwned !== undefined || inert.elements) fail(`the description's HTML was interpreted: ${JSON.stringify(inert)}`);
  for (const s of ["[evil](javascript:window.__pwned=1)", "[data](data:text/html,hi)", "[relative](/api/v1/me)", "<img src=x onerror=\"window.__pwned=2\">", "<script>"]) {
    if (!inert.text.includes(s)) fail(`"${s}" is not shown as text: ${inert.text}`);
  }

  step("watch the log stream in, with friendly labels");
  await page.waitForSelector("section.task");
  await page.waitForSelector("ol.log li.msg-tool_use");
  const early = await page.locator("ol.log li.msg").count();
  await page.waitForSelector("ol.log li.msg-text:has-text('MOCK-DONE: wrote and read hello.txt')");
  const late = await page.locator("ol.log li.msg").count();
  if (!(late > early)) fail(`the log did not stream in (${early} then ${late} messages)`);
  const labels = await page.locator("ol.log li.msg .kind").allTextContents();
  if (labels.some((l) => /^[A-Z_]+$/.test(l) || /tool_use|tool_result/.test(l))) fail(`raw labels: ${labels}`);
  if (!labels.some((l) => /^Tool call · \S+/.test(l))) fail(`no "Tool call · NAME" label: ${labels}`);
  if (!labels.includes("Agent")) fail(`no "Agent" label: ${labels}`);
  await page.waitForSelector("section.task[data-status=completed]");
  await page.waitForSelector(".comment.by-agent:has-text('MOCK-DONE')");
  await page.waitForSelector("section.task .usage li");
  const branch = await page.locator("section.task dd code").first().textContent();
  if (!branch || branch === "—") fail("no branch shown on the task");

  step("the activity: created, queued, started, completed, status changes, with actors and times");
  for (const kind of ["created", "task_queued", "task_started", "task_completed", "status_changed"]) {
    await page.locator(`.timeline li.act-${kind}`).first().waitFor();
  }
  await page.locator(".timeline li.act-status_changed", { hasText: "In progress" }).first().waitFor();
  const times = await page.locator(".timeline li time").evaluateAll((els) => els.map((e) => [e.getAttribute("datetime"), e.title, e.textContent]));
  if (!times.length || times.some(([dt, title, text]) => !dt || !title || !/ ago$/.test(text))) fail(`activity times: ${JSON.stringify(times)}`);
  await page.screenshot({ path: join(shots, "issue-1280.png"), fullPage: true });

  step("both runs land: both cards in In review, on both pages");
  await page.click("a.brand");
  for (const title of ["Write hello.txt", "Say hello twice"]) {
    const c = page.locator(".column[data-status=in_review] .card", { hasText: title });
    await c.locator(".badge.task-completed").waitFor({ timeout: 40000 });
    await watcher.locator(".column[data-status=in_review] .card", { hasText: title }).waitFor();
  }
  await page.screenshot({ path: join(shots, "board-1280.png"), fullPage: true });

  step("move a card to Done with the keyboard: focus stays on its control");
  const second = page.locator(".card", { hasText: "Say hello twice" });
  const secondId = await second.getAttribute("data-issue-id");
  // The board re-renders at once (the card moves) and again after the server's answer.
  const reloaded = () => page.waitForResponse((r) => r.url().includes("/api/v1/issues?") && r.request().method() === "GET");
  await second.locator("select[data-role=move]").focus();
  let refetch = reloaded();
  await page.keyboard.press("ArrowDown"); // In review → Done
  await page.locator(".column[data-status=done] .card", { hasText: "Say hello twice" }).waitFor();
  await refetch;
  await page.waitForTimeout(100); // its render
  await watcher.locator(".column[data-status=done] .card", { hasText: "Say hello twice" }).waitFor();
  const focus = await page.evaluate(() => {
    const a = document.activeElement;
    const c = a && a.closest(".card");
    return { role: a && a.dataset.role, card: c && c.dataset.issueId, column: c && c.closest(".column").dataset.status };
  });
  if (focus.card !== secondId || focus.role !== "move" || focus.column !== "done") fail(`focus after the keyboard move: ${JSON.stringify(focus)}`);
  refetch = reloaded();
  await page.keyboard.press("ArrowUp"); // and back, still from the keyboard
  await page.locator(".column[data-status=in_review] .card", { hasText: "Say hello twice" }).waitFor();
  await refetch;
  await page.waitForTimeout(100);
  const back = await page.evaluate(() => document.activeElement.closest(".card")?.dataset.issueId);
  if (back !== secondId) fail("focus left the card after moving it back");

  step("move the card to Done with its control; the watcher follows");
  await page.locator(".column[data-status=in_review] .card", { hasText: "Write hello.txt" }).locator("select").selectOption("done");
  await page.locator(".column[data-status=done] .card", { hasText: "Write hello.txt" }).waitFor();
  await watcher.locator(".column[data-status=done] .card", { hasText: "Write hello.txt" }).waitFor();

  step("edit on demand: Escape cancels, Save saves; comments render Markdown");
  await page.locator(".column[data-status=done] .card a.card-title", { hasText: "Write hello.txt" }).click();
  await page.waitForSelector(".description h2");
  if (await page.locator("form.edit").count()) fail("the edit form shows before Edit is pressed");
  await page.click("button.edit-button");
  await page.fill("form.edit textarea", "Thrown away");
  await page.keyboard.press("Escape");
  await page.waitForSelector("form.edit", { state: "detached" });
  if (!(await page.locator(".description").textContent()).includes("Plan")) fail("Escape did not keep the description");
  if (!(await page.evaluate(() => document.activeElement.classList.contains("edit-button")))) fail("focus did not return to Edit");
  await page.click("button.edit-button");
  await page.fill("form.edit textarea", `${mdDescription}\n\nEdited in the **browser**.`);
  await page.click("form.edit button[type=submit]");
  await page.locator(".description strong", { hasText: "browser" }).waitFor();
  await page.locator(".timeline li.act-edited").first().waitFor();
  await page.fill(".comment-form textarea", "Thanks, **looks good**! <img src=x onerror=\"window.__pwned=4\">");
  await page.click(".comment-form button[type=submit]");
  await page.waitForSelector(".comment.by-member:has-text('Thanks, looks good!')");
  await page.locator(".comment.by-member strong", { hasText: "looks good" }).waitFor();
  if (await page.locator(".timeline img").count()) fail("a comment's HTML was interpreted");
  await watcher.locator(".column[data-status=done] .card a.card-title", { hasText: "Write hello.txt" }).click();
  await watcher.waitForSelector(".comment.by-member:has-text('Thanks, looks good!')");
  await watcher.locator(".description strong", { hasText: "browser" }).waitFor();

  step("a gated run: the card shows In progress while it runs");
  await page.click("a.brand");
  await page.click("details.create summary");
  await page.fill(".new-issue input[name=title]", "Slow task [gated]");
  await page.selectOption(".new-issue select[name=assignee]", { label: agentName });
  await page.click(".new-issue button[type=submit]");
  const slowCard = page.locator(".column[data-status=in_progress] .card", { hasText: "Slow task [gated]" });
  await slowCard.locator(".badge[data-task-status=running]").waitFor();
  await watcher.click("a.brand");
  await watcher.locator(".column[data-status=in_progress] .card", { hasText: "Slow task [gated]" }).waitFor();

  step("cancel asks first, the activity says who cancelled; a half-typed title survives live refreshes");
  await slowCard.locator("a.card-title").click();
  await page.waitForSelector("section.task[data-status=running]");
  await page.click("button.edit-button");
  await page.fill("form.edit input.title-input", "Slow task [gated], renamed but not saved yet");
  const badge = page.locator("section.task[data-status=running] .badge[data-task-status=running]");
  const t0 = await badge.textContent();
  await page.waitForFunction((before) => {
    const b = document.querySelector("section.task[data-status=running] .badge[data-task-status=running]");
    return b && b.textContent !== before;
  }, t0, { timeout: 5000 }).catch(() => fail(`the running badge did not tick (${t0})`));
  await page.click("section.task[data-status=running] button:has-text('Cancel')");
  await page.waitForSelector("dialog.confirm[open]");
  await axeCheck(page, "cancel dialog");
  await page.click("dialog.confirm button:has-text('Keep running')"); // changed their mind
  await page.waitForSelector("dialog.confirm", { state: "detached" });
  if (!(await page.locator("section.task[data-status=running]").count())) fail("Keep running cancelled the run");
  await page.click("section.task[data-status=running] button:has-text('Cancel')");
  await page.click("dialog.confirm button:has-text('Cancel run')");
  await page.waitForSelector("section.task[data-status=cancelled]");
  const me = (await apiCall("GET", "/api/v1/me")).body.name;
  await page.locator(".timeline li.act-task_cancelled", { hasText: me }).waitFor();
  await page.locator("section.task[data-status=cancelled] .cancelled-by", { hasText: me }).waitFor();
  // A cancelled run still says what it cost (summed from the messages it streamed).
  await page.locator("section.task[data-status=cancelled] .usage li", { hasText: "50 in · 4 out" }).waitFor();

  step("a stale page (no live updates) and a fresh one: retry from the fresh one");
  const slowHref = page.url().split("#")[1];
  const stale = await ctx.newPage();
  watchErrors(stale, ["status of 409", "ERR_FAILED"]); // its event stream is cut on purpose
  await stale.route("**/events", (r) => r.abort());
  await stale.goto(`${url}/#${slowHref}`);
  await stale.waitForSelector("section.task[data-status=cancelled] button:has-text('Retry')");
  await page.bringToFront();
  writeFileSync(join(gateDir, "open"), "go\n"); // from now on gated runs go through
  await page.click("section.task[data-status=cancelled] button:has-text('Retry')");
  await page.waitForFunction(() => document.querySelectorAll("section.task").length === 2);
  await page.locator(".timeline li.act-task_retried", { hasText: me }).waitFor();
  await page.locator("section.task .retried-by", { hasText: me }).waitFor();
  const retriedText = await page.locator(".timeline li.act-task_retried").textContent();
  if (!/retried run [0-9a-f]{8} as run [0-9a-f]{8}/.test(retriedText)) fail(`the retry's entry: ${retriedText}`);
  await page.waitForSelector("section.task:first-of-type[data-status=completed]", { timeout: 30000 });
  const kept = await page.inputValue("form.edit input.title-input");
  if (kept !== "Slow task [gated], renamed but not saved yet") fail(`live refresh clobbered the title being edited: ${kept}`);
  await page.screenshot({ path: join(shots, "issue-retried-1280.png"), fullPage: true });
  await page.click("form.edit button[type=submit]");
  await page.locator("#issue-title", { hasText: "renamed but not saved yet" }).waitFor();

  step("the stale page's Retry is answered already_retried: it shows the existing retry");
  await stale.bringToFront();
  await stale.click("section.task[data-status=cancelled] button:has-text('Retry')");
  await stale.locator(".toast", { hasText: "already retried" }).waitFor();
  await stale.waitForSelector("section.task.highlight:focus");
  const retryShown = await stale.evaluate(() => document.activeElement.dataset.taskId);
  const slowDetail = (await apiCall("GET", `/api/v1/issues/${slowHref.split("/").pop()}`)).body;
  const retry = slowDetail.tasks.find((t) => t.parent_task_id);
  if (!retry || retryShown !== retry.id) fail(`the stale page showed ${retryShown}, the retry is ${retry && retry.id}`);
  if (slowDetail.tasks.length !== 2) fail(`the stale retry made another run: ${slowDetail.tasks.length} runs`);
  await stale.close();
  await page.bringToFront();

  step("a failed run: its reason on the card, its error on the issue page and in the activity");
  await page.click("a.brand");
  await page.click("details.create summary");
  await page.fill(".new-issue input[name=title]", "Doomed task [broken]");
  await page.selectOption(".new-issue select[name=assignee]", { label: agentName });
  await page.click(".new-issue button[type=submit]");
  const doomed = page.locator(".card", { hasText: "Doomed task [broken]" });
  const failed = doomed.locator(".badge.task-failed");
  await failed.waitFor({ timeout: 30000 });
  const failedText = await failed.textContent();
  if (!/^Failed: \S/.test(failedText)) fail(`the failed badge says ${failedText}`);
  const doomedId = await doomed.getAttribute("data-issue-id");
  const doomedTask = (await apiCall("GET", `/api/v1/issues/${doomedId}`)).body.tasks.at(-1);
  if (!doomedTask.error || !failedText.includes(doomedTask.error.split("\n")[0].slice(0, 30))) {
    fail(`the card's reason "${failedText}" is not the run's error "${doomedTask.error}"`);
  }
  await watcher.locator(".card", { hasText: "Doomed task [broken]" }).locator(".badge.task-failed").waitFor();
  await doomed.locator("a.card-title").click();
  await page.locator("section.task[data-status=failed] .task-error", { hasText: doomedTask.error.split("\n")[0] }).waitFor();
  await page.locator(".timeline li.act-task_failed .activity-error").waitFor();
  await page.locator("section.task[data-status=failed] .usage li", { hasText: "50 in · 4 out" }).waitFor();
  await page.screenshot({ path: join(shots, "issue-failed-1280.png"), fullPage: true });

  step("search and filter: instant, in the URL, kept on reload, an empty result said");
  await page.click("a.brand");
  await page.locator(".card", { hasText: "Doomed task" }).waitFor();
  const total = await page.locator(".card").count();
  await page.fill("#filter-q", "hello");
  await page.waitForFunction(() => document.querySelectorAll(".card").length === 2);
  const titles = await page.locator(".card .card-title").allTextContents();
  if (!titles.every((t) => /hello/i.test(t))) fail(`search "hello" shows ${titles}`);
  if (!page.url().includes("q=hello")) fail(`the search is not in the URL: ${page.url()}`);
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll(".card").length === 2);
  if ((await page.inputValue("#filter-q")) !== "hello") fail("the search box lost its text on reload");
  await page.fill("#filter-q", key1.toLowerCase()); // by key
  await page.waitForFunction(() => document.querySelectorAll(".card").length === 1);
  await page.locator(".card", { hasText: "Write hello.txt" }).waitFor();
  await page.fill("#filter-q", "markdown-free zebra");
  await page.locator("#board-empty", { hasText: "No issues match" }).waitFor();
  await page.fill("#filter-q", "");
  await page.selectOption("#filter-status", "todo");
  await page.locator(".card", { hasText: "Doomed task" }).waitFor();
  if (await page.locator(".column[data-status=done]").isVisible()) fail("a status filter still shows other columns");
  await page.selectOption("#filter-status", "");
  await page.selectOption("#filter-agent", "none");
  await page.locator("#board-empty", { hasText: "No issues match" }).waitFor(); // every issue has an agent
  await page.click("#filter-clear");
  await page.waitForFunction((n) => document.querySelectorAll(".card").length === n, total);
  if (page.url().includes("?")) fail(`cleared filters stay in the URL: ${page.url()}`);

  step("drag a card to another column; the watcher follows");
  const slow = page.locator(".card", { hasText: "renamed but not saved yet" });
  await slow.dragTo(page.locator(".column[data-status=done]"));
  await page.locator(".column[data-status=done] .card", { hasText: "renamed but not saved yet" }).waitFor();
  await watcher.locator(".column[data-status=done] .card", { hasText: "renamed but not saved yet" }).waitFor();

  step("the one-click sign-in link: signs a new browser in, and works once");
  const code = await apiCall("POST", "/api/v1/signin-codes", {});
  if (code.status !== 200 && code.status !== 201) fail(`POST /api/v1/signin-codes: ${code.status} ${JSON.stringify(code.body)}`);
  const linkCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const linked = await linkCtx.newPage();
  watchErrors(linked, ["status of 401"]);
  await linked.goto(`${url}/#/signin/${code.body.code}`);
  await linked.waitForSelector(".board .card");
  if (linked.url().includes(code.body.code)) fail(`the code lingers in the URL: ${linked.url()}`);
  const session = await linked.evaluate(() => localStorage.getItem("agentd.token"));
  if (!session || session === token) fail("the link did not store a session token of its own");
  const whoami = await apiCall("GET", "/api/v1/me", undefined, session);
  if (whoami.status !== 200 || whoami.body.kind !== "member") fail(`the session token: ${JSON.stringify(whoami)}`);
  const again = await (await browser.newContext()).newPage();
  watchErrors(again, ["status of 401"]);
  await again.goto(`${url}/#/signin/${code.body.code}`);
  await again.locator("#signin-error", { hasText: "invalid" }).waitFor();
  await again.locator("#token").waitFor();
  if (again.url().includes(code.body.code)) fail("a refused code lingers in the URL");
  await again.close();

  step("sign-out forgets the token in this browser and revokes the link's session");
  await linked.click("#signout");
  await linked.locator("#token").waitFor();
  if (await linked.evaluate(() => localStorage.getItem("agentd.token"))) fail("sign-out kept the token");
  const after = await apiCall("GET", "/api/v1/me", undefined, session);
  if (after.status !== 401) fail(`a signed-out board session still works: ${after.status}`);
  await linked.reload();
  await linked.locator("#token").waitFor();

  step("a refused token (revoked elsewhere) is forgotten and the board asks again");
  const code2 = await apiCall("POST", "/api/v1/signin-codes", {});
  await linked.goto(`${url}/#/signin/${code2.body.code}`);
  await linked.waitForSelector(".board .card");
  const session2 = await linked.evaluate(() => localStorage.getItem("agentd.token"));
  const mine = (await apiCall("GET", "/api/v1/tokens", undefined, session2)).body.find((t) => t.current);
  if (!mine || mine.name !== "board session") fail(`the link's token: ${JSON.stringify(mine)}`);
  const revoked = await apiCall("DELETE", `/api/v1/tokens/${mine.id}`); // by its maker
  if (revoked.status !== 200) fail(`revoke the board session: ${revoked.status}`);
  await linked.reload();
  await linked.locator("#signin-error", { hasText: "Signed out" }).waitFor();
  if (await linked.evaluate(() => localStorage.getItem("agentd.token"))) fail("a refused token was kept");
  if (session2 === session) fail("the second link gave the same token");
  await linkCtx.close();

  step("delete the runtime: the daemon re-registers and the page shows the new one");
  await page.click("[data-nav=runtimes]");
  const row = page.locator("tr[data-provider=claude]");
  await row.locator(".rt-online").waitFor();
  // Every row says how its agent runs are isolated (this daemon reports no state yet: "-").
  const sandbox = await row.locator("[data-sandbox]").getAttribute("data-sandbox");
  if (!["bwrap", "off", "unavailable", "-"].includes(sandbox)) fail(`sandbox badge: ${sandbox}`);
  const oldId = await row.getAttribute("data-runtime-id");
  await page.screenshot({ path: join(shots, "runtimes-1280.png"), fullPage: true });
  page.once("dialog", (dl) => dl.accept());
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
  await page.locator(".agent h2", { hasText: `${agentName}-2` }).waitFor();
  await page.locator(".agent", { hasText: "claude" }).locator("text=deleted runtime").waitFor({ state: "detached" });
  await page.screenshot({ path: join(shots, "agents-1280.png"), fullPage: true });

  step("a pool agent: any claude runtime; one whose pool matches nothing says so");
  await page.click("details.create summary");
  const newAgent = page.locator("#new-agent .agent-form");
  await newAgent.locator("input[aria-label=Name]").fill("pooled");
  await newAgent.locator("input[aria-label='Pool provider']").fill("claude");
  await newAgent.locator("button[type=submit]").click();
  await page.locator(".agent", { hasText: "pooled" }).locator("text=pool (any claude) · 1 runtime, 1 online").waitFor();
  await newAgent.locator("input[aria-label=Name]").fill("nowhere");
  await newAgent.locator("input[aria-label='Pool provider']").fill("gemini");
  await newAgent.locator("button[type=submit]").click();
  await page.locator(".agent", { hasText: "nowhere" }).locator(".agent-problem", { hasText: "no runtime matches" }).waitFor();

  step("a task's diff: diffstat on the card and the task, per-file diff, HTML kept as text");
  await page.click("a.brand");
  const diffCard = page.locator(".card", { hasText: "Show the diff" });
  const cardCounts = await diffCard.locator(".diff-counts").textContent();
  if (cardCounts !== "+13 −2") fail(`card diffstat: ${cardCounts}`);
  await diffCard.locator("a.card-title").click();
  await page.waitForSelector("section.task[data-status=completed]");
  const stat = await page.locator("section.task .facts .diffstat").textContent();
  if (stat !== "4 files changed +13 −2") fail(`task diffstat: ${stat}`);
  // The newest task's diff opens by itself; one box per file of the patch.
  await page.waitForSelector("details.task-diff[open] details.diff-file");
  const paths = await page.locator(".diff-file").evaluateAll((els) => els.map((e) => e.dataset.path));
  if (JSON.stringify(paths) !== JSON.stringify(["src/lib.rs", "docs/<i>notes</i>.md", "logo.png"])) {
    fail(`diff files: ${JSON.stringify(paths)}`);
  }
  const lib = page.locator(".diff-file[data-path='src/lib.rs']");
  if ((await lib.locator("summary").textContent()) !== "src/lib.rs +3 −1") {
    fail(`file summary: ${await lib.locator("summary").textContent()}`);
  }
  await lib.locator(".ln-add", { hasText: "<img src=x onerror=" }).waitFor();
  await lib.locator(".ln-add", { hasText: "<script>window.__pwned=2</script>" }).waitFor();
  await lib.locator(".ln-del", { hasText: "-fn old() {}" }).waitFor();
  if ((await lib.locator(".ln-hunk").count()) !== 2) fail("two hunk headers");
  if ((await lib.locator(".ln-ctx").count()) !== 2) fail("two context lines");
  const injected = await page.evaluate(() => ({
    pwned: window.__pwned,
    elements: document.querySelectorAll(".diff img, .diff script, .diff i").length,
  }));
  if (injected.pwned !== undefined || injected.elements) {
    fail(`the patch's HTML was interpreted: ${JSON.stringify(injected)}`);
  }
  const colors = await page.evaluate(() => {
    const bg = (sel) => getComputedStyle(document.querySelector(sel)).backgroundColor.match(/\d+/g).map(Number);
    return { add: bg(".ln-add"), del: bg(".ln-del") };
  });
  if (!(colors.add[1] > colors.add[0] && colors.del[0] > colors.del[1])) {
    fail(`added lines are not green, removed not red: ${JSON.stringify(colors)}`);
  }
  const marker = await page.locator(".diff-marker").textContent();
  if (marker !== "… [diff truncated: 1234 more bytes not shown]") fail(`marker: ${marker}`);
  await page.locator(".diff-truncated").waitFor();
  // The file cut from the patch is still listed with its counts.
  await page.locator(".diff-rest li", { hasText: "src/cut.rs" }).waitFor();
  // Collapsible per file.
  await lib.locator("summary").click();
  if (await lib.locator(".diff-lines").isVisible()) fail("the file did not collapse");
  await lib.locator("summary").click();
  await lib.locator(".diff-lines").waitFor();
  await page.screenshot({ path: join(shots, "diff-1280.png"), fullPage: true });

  step("390 px wide: no horizontal overflow on any page");
  await page.setViewportSize({ width: 390, height: 844 });
  const helloId = await issueId(page, "Write hello.txt");
  for (const [hash, name, ready] of [
    ["#/", "board", ".board .card"],
    [`#/issues/${helloId}`, "issue", "section.task"],
    [`#/issues/${doomedId}`, "failed", "section.task[data-status=failed]"],
    [`#${slowHref}`, "retried", "section.task[data-status=cancelled]"],
    ["#/runtimes", "runtimes", "tr[data-provider]"],
    ["#/agents", "agents", ".agent"],
    [`#/issues/${diffIssue}`, "diff", "details.task-diff[open] .diff-file .ln-add"],
  ]) {
    await page.goto(`${url}/${hash}`);
    await page.waitForSelector(ready);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    if (width > 390) fail(`${name} overflows at 390 px: scrollWidth ${width}`);
    // A stray null/undefined rendered as text is a bug (the issue page shows agent output).
    const timelineText = await page.evaluate(() => document.querySelector(".timeline")?.innerText || "");
    const strayInTimeline = timelineText.match(/\[object \w+\]|\b(undefined|null|NaN)\b/);
    if (strayInTimeline) fail(`${name}'s activity shows "${strayInTimeline[0]}": ${timelineText}`);
    if (!["issue", "diff", "retried"].includes(name)) {
      const text = await page.evaluate(() => document.getElementById("main").innerText);
      const bad = text.match(/\b(null|undefined|NaN)\b/);
      if (bad) fail(`${name} shows "${bad[1]}": ${text}`);
    }
    await page.screenshot({ path: join(shots, `${name}-390.png`), fullPage: true });
  }

  step("axe-core on every view, at 1280 and 390 px, light and dark");
  const views = [
    ["board", "#/", ".board .card", null],
    ["new-issue form", "#/", ".board .card", async (p) => { await p.click("details.create summary"); await p.waitForSelector(".new-issue"); }],
    ["filtered board (no match)", "#/?q=zebra-nothing", "#board-empty:not([hidden])", null],
    ["issue with activity and transcript", `#/issues/${helloId}`, "ol.log li.msg-text", null],
    ["issue with a failed run", `#/issues/${doomedId}`, "section.task[data-status=failed]", null],
    ["issue editing", `#/issues/${helloId}`, "ol.log li.msg-text", async (p) => { await p.click("button.edit-button"); await p.waitForSelector("form.edit"); }],
    ["issue with a diff", `#/issues/${diffIssue}`, "details.task-diff[open] .diff-file .ln-add", null],
    ["runtimes", "#/runtimes", "tr[data-provider]", null],
    ["agents", "#/agents", ".agent", null],
    ["tokens", "#/tokens", "tr[data-token-id]", null],
  ];
  const signinPage = await (await browser.newContext()).newPage();
  for (const scheme of ["light", "dark"]) {
    for (const width of [1280, 390]) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.setViewportSize({ width, height: width > 800 ? 800 : 844 });
      for (const [name, hash, ready, prepare] of views) {
        await page.goto(`${url}/${hash}`);
        await page.waitForSelector(ready);
        if (prepare) await prepare(page);
        await axeCheck(page, name);
        if (name === "board" && scheme === "dark") await page.screenshot({ path: join(shots, `board-dark-${width}.png`), fullPage: true });
      }
      await signinPage.emulateMedia({ colorScheme: scheme });
      await signinPage.setViewportSize({ width, height: 800 });
      await signinPage.goto(url);
      await signinPage.waitForSelector("#token");
      await axeCheck(signinPage, "sign-in");
    }
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(`${url}/#/`);

  if (axeViolations.length) failures.push(`axe: serious or critical violations:\n${axeViolations.join("\n")}`);

  step("the skip link leads to the content");
  await page.bringToFront();
  await page.reload(); // a fresh document: Tab starts from the top
  await page.waitForSelector(".board .card");
  await page.keyboard.press("Tab");
  if (!(await page.evaluate(() => document.activeElement.id === "skip"))) fail("the first Tab does not reach the skip link");
  await page.keyboard.press("Enter");
  if (!(await page.evaluate(() => document.activeElement.id === "main"))) fail("the skip link did not move focus to the content");
  if (!page.url().endsWith("#/")) fail(`the skip link changed the route: ${page.url()}`);

  console.log(`axe-core ${require("axe-core/package.json").version}: ${axeReport.length} checks`);
  for (const line of axeReport) console.log(`  axe ${line}`);
  if (failures.length) fail(failures.join("\n"));
  console.log("board e2e: ok");
} catch (e) {
  console.error(`board e2e FAILED: ${e.stack || e.message}`);
  for (const [n, p] of openPages.entries()) {
    if (!p.isClosed()) await p.screenshot({ path: join(shots, `failure-${n}.png`), fullPage: true }).catch(() => {});
  }
  if (failures.length) console.error(failures.join("\n"));
  if (axeReport.length) console.error(axeReport.map((l) => `  axe ${l}`).join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function issueId(page, title) {
  await page.goto(`${url}/#/`);
  const href = await page.locator(".card a.card-title", { hasText: title }).getAttribute("href");
  return href.split("/").pop();
}
