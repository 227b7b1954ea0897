// The agentd web board: a client of the user API (/api/v1) and of the workspace's live
// event stream. Views are hash routes: #/ (board), #/issues/ID, #/runtimes, #/agents,
// #/tokens.
// Untrusted text is only ever set with textContent (see h()); nothing is parsed as HTML.

const STATUSES = ["backlog", "todo", "in_progress", "in_review", "done", "cancelled"];
const STATUS_LABEL = {
  backlog: "Backlog", todo: "To do", in_progress: "In progress",
  in_review: "In review", done: "Done", cancelled: "Cancelled",
};
const TOKEN_KEY = "agentd.token";
const WORKSPACE_KEY = "agentd.workspace";

// Published list prices in USD per million tokens (input, output, cache read, cache
// write), as of late 2025, for a rough per-task estimate; the first match wins. Models
// not listed show tokens only. Update this table when prices change.
const PRICES = [
  [/opus-4-[5-9]|opus-[5-9]/i, [5, 25, 0.5, 6.25]],
  [/opus/i, [15, 75, 1.5, 18.75]],
  [/sonnet/i, [3, 15, 0.3, 3.75]],
  [/haiku-4|haiku-[5-9]/i, [1, 5, 0.1, 1.25]],
  [/haiku/i, [0.8, 4, 0.08, 1]],
  [/gpt-5.*nano/i, [0.05, 0.4, 0.005, 0]],
  [/gpt-5.*mini/i, [0.25, 2, 0.025, 0]],
  [/gpt-5/i, [1.25, 10, 0.125, 0]],
  [/gemini.*flash/i, [0.3, 2.5, 0.075, 0]],
  [/gemini.*pro/i, [1.25, 10, 0.31, 0]],
];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  workspace: sessionStorage.getItem(WORKSPACE_KEY),
  workspaces: [],
  agents: [],
  view: null, // { name, onEvent(ev), dispose() }
  stream: null, // AbortController of the event stream
};

// ---------------------------------------------------------------- DOM helpers

/** An element: h("div.card", {onclick}, child, "text", …). Strings become text nodes. */
function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function mount(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
}

function toast(message, kind = "error") {
  const t = h(`div.toast.${kind}`, { role: "status" }, message);
  document.body.append(t);
  setTimeout(() => t.remove(), 5000);
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function elapsed(fromIso, toIso) {
  if (!fromIso) return "";
  const end = toIso ? Date.parse(toIso) : Date.now();
  const s = Math.max(0, Math.round((end - Date.parse(fromIso)) / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m}m ${s % 60}s` : `${s}s`;
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: `Bearer ${state.token}` } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, `cannot reach the server (${e.message})`);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const msg = (data && data.error) || `${resp.status} ${resp.statusText}`;
    // A refused token ends a session; during sign-in the form shows the error itself.
    if (resp.status === 401 && sessionStorage.getItem(TOKEN_KEY)) signOut(`Signed out: ${msg}`);
    throw new ApiError(resp.status, msg);
  }
  return data;
}

const get = (p) => api("GET", p);
const post = (p, b) => api("POST", p, b ?? {});
const patch = (p, b) => api("PATCH", p, b);

/** Every issue of the workspace: the pages of GET /api/v1/issues, following `next`. */
async function allIssues(workspace) {
  const base = `/api/v1/issues?workspace_id=${encodeURIComponent(workspace)}&limit=500`;
  const out = [];
  let page = await get(base);
  out.push(...page.issues);
  while (page.next) {
    page = await get(`${base}&after=${encodeURIComponent(page.next)}`);
    out.push(...page.issues);
  }
  return out;
}

/** Runs an action, showing its error instead of throwing. */
async function attempt(fn) {
  try {
    return await fn();
  } catch (e) {
    toast(e.message);
    return undefined;
  }
}

// ---------------------------------------------------------------- session

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  stopStream();
  renderSignIn(message);
}

function renderSignIn(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("session").hidden = true;
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", required: true,
    placeholder: "agd_…", "aria-label": "API token",
  });
  const err = h("p.error", { id: "signin-error" }, message || "");
  const form = h("form.signin", {
    onsubmit: async (e) => {
      e.preventDefault();
      state.token = input.value.trim();
      try {
        await get("/api/v1/me");
      } catch (ex) {
        state.token = null;
        err.textContent = `Sign-in failed: ${ex.message}`;
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, state.token);
      start();
    },
  },
    h("h1", {}, "Sign in to agentd"),
    h("p.muted", {}, "Paste an API token (",
      h("code", {}, "agentd token create"), ", or the token ", h("code", {}, "agentd up"),
      " wrote to its data dir). It stays in this tab's session storage."),
    h("label", { for: "token" }, "API token"),
    input,
    h("button.primary", { type: "submit", id: "signin" }, "Sign in"),
    err,
  );
  mount(form);
  input.focus();
}

async function start() {
  let list;
  try {
    list = await get("/api/v1/workspaces");
  } catch (e) {
    if (state.token) renderSignIn(e.message);
    return;
  }
  state.workspaces = list;
  if (!list.length) {
    mount(h("p.muted", {}, "This token sees no workspace. Create one with ",
      h("code", {}, "agentd workspace create NAME"), "."));
    return;
  }
  if (!list.some((w) => w.id === state.workspace)) state.workspace = list[0].id;
  sessionStorage.setItem(WORKSPACE_KEY, state.workspace);
  const sel = document.getElementById("workspace");
  sel.replaceChildren(...list.map((w) => h("option", { value: w.id, selected: w.id === state.workspace }, w.name)));
  sel.onchange = () => {
    state.workspace = sel.value;
    sessionStorage.setItem(WORKSPACE_KEY, state.workspace);
    startStream();
    route();
  };
  document.getElementById("nav").hidden = false;
  document.getElementById("session").hidden = false;
  document.getElementById("signout").onclick = () => signOut("Signed out.");
  startStream();
  route();
}

// ---------------------------------------------------------------- live events

function setLive(text, cls) {
  const el = document.getElementById("live");
  el.textContent = text;
  el.className = `live ${cls}`;
}

function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

/** Reads the workspace's SSE stream with fetch (the token travels in a header, never in
 *  the URL), dispatching each event to the current view; reconnects with backoff. */
function startStream() {
  stopStream();
  const ctl = new AbortController();
  state.stream = ctl;
  const ws = state.workspace;
  (async () => {
    let attemptNo = 0;
    while (!ctl.signal.aborted) {
      try {
        const resp = await fetch(`/api/v1/workspaces/${ws}/events`, {
          headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
          signal: ctl.signal,
        });
        if (resp.status === 401) { signOut("Signed out: the token was refused."); return; }
        if (!resp.ok) throw new Error(`${resp.status}`);
        setLive("live", "on");
        attemptNo = 0;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const data = block.split("\n").filter((l) => l.startsWith("data:"))
              .map((l) => l.slice(5).trimStart()).join("\n");
            if (!data) continue;
            let ev;
            try { ev = JSON.parse(data); } catch { continue; }
            if (state.view && state.view.onEvent) state.view.onEvent(ev);
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      setLive("reconnecting", "off");
      attemptNo += 1;
      const cap = Math.min(30000, 1000 * 2 ** Math.min(attemptNo, 5));
      await new Promise((r) => setTimeout(r, Math.random() * cap));
    }
  })();
}

/** Coalesces bursts of events into one refresh at most every `ms`. */
function debounced(fn, ms = 150) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}

// ---------------------------------------------------------------- router

function route() {
  if (!state.token) return renderSignIn();
  if (state.view && state.view.dispose) state.view.dispose();
  state.view = null;
  const hash = location.hash.replace(/^#/, "") || "/";
  const m = hash.match(/^\/issues\/([\w-]+)$/);
  let name = "board";
  if (m) { name = "issue"; state.view = issueView(m[1]); }
  else if (hash === "/runtimes") { name = "runtimes"; state.view = runtimesView(); }
  else if (hash === "/agents") { name = "agents"; state.view = agentsView(); }
  else if (hash === "/tokens") { name = "tokens"; state.view = tokensView(); }
  else state.view = boardView();
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === name || (name === "issue" && a.dataset.nav === "board"));
  }
}

window.addEventListener("hashchange", route);

async function loadAgents() {
  state.agents = await get(`/api/v1/workspaces/${state.workspace}/agents`);
  return state.agents;
}

const agentName = (id) => (state.agents.find((a) => a.id === id) || {}).name || "unassigned";

/** Agents to pick from; "unassigned" is offered only while nobody is assigned (the API
 *  reassigns, it does not unassign). */
function agentSelect(selected, attrs = {}) {
  return h("select", attrs,
    selected ? null : h("option", { value: "" }, "— unassigned —"),
    state.agents.map((a) => h("option", { value: a.id, selected: a.id === selected }, a.name)));
}

function statusSelect(selected, attrs = {}) {
  return h("select", attrs, STATUSES.map((s) => h("option", { value: s, selected: s === selected }, STATUS_LABEL[s])));
}

/** Ticks every `[data-running-since]` element under `root` (elapsed time of running
 *  tasks) once a second; returns the interval to clear. */
function tickRunning(root) {
  return setInterval(() => {
    for (const el of root.querySelectorAll("[data-running-since]")) {
      el.textContent = (el.dataset.prefix || "") + elapsed(el.dataset.runningSince);
    }
  }, 1000);
}

/** A running task's elapsed time, kept current by tickRunning. */
function runningFor(t, prefix = "") {
  return h("span", { dataset: { runningSince: t.started_at, prefix } }, prefix + elapsed(t.started_at));
}

function taskBadge(t) {
  if (!t) return null;
  const cls = `span.badge.task-${t.status}`;
  const attrs = { dataset: { taskStatus: t.status }, title: `task ${t.id}` };
  if (t.status === "running" && t.started_at) {
    return h(cls, { ...attrs, dataset: { ...attrs.dataset, runningSince: t.started_at, prefix: "running " } },
      `running ${elapsed(t.started_at)}`);
  }
  let text = t.status;
  if (t.status === "failed" && t.failure_reason) text = `failed: ${t.failure_reason}`;
  return h(cls, attrs, text);
}

// ---------------------------------------------------------------- board

function boardView() {
  let issues = [];
  let ticker = null;
  let newAssignee = null; // the new-issue form's assignee select (agents come and go)
  const columns = {};
  const newForm = () => {
    const title = h("input", { name: "title", required: true, placeholder: "What needs doing?", "aria-label": "Title" });
    const desc = h("textarea", { name: "description", rows: 3, placeholder: "Description (optional)", "aria-label": "Description" });
    const assignee = agentSelect("", { name: "assignee", "aria-label": "Assignee" });
    newAssignee = assignee;
    const status = statusSelect("todo", { name: "status", "aria-label": "Status" });
    const form = h("form.new-issue", {
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { title: title.value, description: desc.value, status: status.value };
        if (assignee.value) body.assignee_agent_id = assignee.value;
        const created = await attempt(() => post(`/api/v1/workspaces/${state.workspace}/issues`, body));
        if (created) {
          // Only the text is cleared: status (To do) and assignee stay for the next one.
          title.value = ""; desc.value = "";
          if (body.status === "backlog" && body.assignee_agent_id) {
            toast("Created in Backlog: the agent starts when you move it to To do.");
          }
          refresh();
        }
      },
    }, title, desc, h("div.row", {}, h("label", {}, "Assign to ", assignee), h("label", {}, "Status ", status),
      h("button.primary", { type: "submit" }, "Create issue")));
    return form;
  };

  const card = (i) => h("article.card", {
    draggable: "true",
    dataset: { issueId: i.id, status: i.status },
    ondragstart: (e) => { e.dataTransfer.setData("text/plain", i.id); e.dataTransfer.effectAllowed = "move"; },
  },
    h("a.card-title", { href: `#/issues/${i.id}` }, i.title),
    h("div.card-meta", {},
      h("span.assignee", {}, i.assignee_agent_id ? agentName(i.assignee_agent_id) : "unassigned"),
      taskBadge(i.latest_task),
      i.latest_task && i.latest_task.diffstat ? diffCounts(i.latest_task.diffstat) : null,
      prBadge(i.pr)),
    h("label.move", {}, "Move to ", statusSelect(i.status, {
      "aria-label": "Move to",
      onchange: (e) => move(i.id, e.target.value),
    })),
  );

  const move = async (id, status) => {
    await attempt(() => patch(`/api/v1/issues/${id}`, { status }));
    refresh();
  };

  const render = () => {
    for (const s of STATUSES) {
      const here = issues.filter((i) => i.status === s);
      columns[s].count.textContent = String(here.length);
      columns[s].list.replaceChildren(...here.map(card));
    }
  };

  const refresh = debounced(async () => {
    try {
      [issues] = await Promise.all([
        allIssues(state.workspace),
        loadAgents(),
      ]);
    } catch (e) { toast(e.message); return; }
    render();
    if (newAssignee && document.activeElement !== newAssignee) {
      const keep = newAssignee.value;
      newAssignee.replaceChildren(...agentSelect("").childNodes);
      newAssignee.value = state.agents.some((a) => a.id === keep) ? keep : "";
    }
  });

  const board = h("div.board", {}, STATUSES.map((s) => {
    const count = h("span.count", {}, "0");
    const list = h("div.cards", {});
    columns[s] = { count, list };
    return h("section.column", {
      dataset: { status: s },
      ondragover: (e) => { e.preventDefault(); e.currentTarget.classList.add("drop"); },
      ondragleave: (e) => {
        if (!e.currentTarget.contains(e.relatedTarget)) e.currentTarget.classList.remove("drop");
      },
      ondrop: (e) => {
        e.preventDefault();
        e.currentTarget.classList.remove("drop");
        const id = e.dataTransfer.getData("text/plain");
        const from = issues.find((i) => i.id === id);
        if (from && from.status !== s) move(id, s);
      },
    }, h("h2", {}, STATUS_LABEL[s], " ", count), list);
  }));

  mount(h("details.create", {}, h("summary", {}, "New issue"), h("div", { id: "new-issue" })), board);
  loadAgents().then(() => document.getElementById("new-issue")?.replaceChildren(newForm())).catch((e) => toast(e.message));
  refresh();
  ticker = tickRunning(board);
  return {
    onEvent: (ev) => { if (ev.kind !== "messages") refresh(); },
    dispose: () => clearInterval(ticker),
  };
}

// ---------------------------------------------------------------- issue page

function usageLine(usage) {
  if (!usage || !usage.length) return h("span.muted", {}, "no usage reported");
  let cost = 0;
  let priced = true;
  const rows = usage.map((u) => {
    const price = PRICES.find(([re]) => re.test(u.model));
    if (price) {
      const [i, o, cr, cw] = price[1];
      cost += (u.input_tokens * i + u.output_tokens * o + u.cache_read_tokens * cr + u.cache_write_tokens * cw) / 1e6;
    } else priced = false;
    return h("li", {}, `${u.model || u.provider}: ${u.input_tokens} in · ${u.output_tokens} out · ${u.cache_read_tokens} cache read · ${u.cache_write_tokens} cache write`);
  });
  return h("div.usage", {}, h("ul", {}, rows),
    h("span.cost", {}, priced ? `≈ $${cost.toFixed(4)} at list prices` : "cost: unknown model price"));
}

function messageNode(m) {
  const kind = m.type || "unknown";
  const body = [];
  if (kind === "tool_use") {
    body.push(h("span.tool", {}, m.tool || "tool"));
    if (m.input !== undefined && m.input !== null) body.push(h("pre", {}, JSON.stringify(m.input, null, 2)));
  } else if (kind === "tool_result") {
    if (m.tool) body.push(h("span.tool", {}, m.tool));
    body.push(h("pre", {}, m.output ?? m.content ?? ""));
  } else {
    body.push(h("div.text", {}, m.content ?? m.output ?? ""));
  }
  return h(`li.msg.msg-${kind}`, { dataset: { seq: String(m.seq) } }, h("span.kind", {}, kind), ...body);
}

/** `+10 −3` of a diffstat or a file. */
function diffCounts(c) {
  return h("span.diff-counts", {}, h("span.adds", {}, `+${c.additions}`), " ",
    h("span.dels", {}, `−${c.deletions}`));
}

/** `2 files changed +10 −3`. */
function diffstatLine(stat) {
  return h("span.diffstat", { dataset: { files: String(stat.files) } },
    `${stat.files} file${stat.files === 1 ? "" : "s"} changed `, diffCounts(stat));
}

// The line a cut patch ends with (`… [diff truncated: N more bytes not shown]`); no line
// of a unified diff starts like this.
const DIFF_MARKER = /^… \[/;

/** A unified diff's lines in per-file chunks, each starting at its `diff --git` line
 *  (text before the first one is a chunk of its own). */
function splitPatch(patch) {
  const lines = patch.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const chunks = [];
  for (const line of lines) {
    if (line.startsWith("diff --git ") || !chunks.length) chunks.push([]);
    chunks[chunks.length - 1].push(line);
  }
  return chunks;
}

/** The path a chunk changes: from its `+++`/`---` lines, else its `diff --git` line. */
function chunkPath(chunk) {
  const clean = (p) => p.replace(/\t.*$/, "").replace(/^"(.*)"$/, "$1").replace(/^[ab]\//, "");
  let old = null;
  for (const l of chunk) {
    if (l.startsWith("@@")) break;
    if (l.startsWith("+++ ") && l !== "+++ /dev/null") return clean(l.slice(4));
    if (l.startsWith("--- ") && l !== "--- /dev/null") old = clean(l.slice(4));
  }
  if (old) return old;
  const m = /^diff --git "?a\/(.*?)"? "?b\/(.*?)"?$/.exec(chunk[0]);
  return m ? m[2] : chunk[0];
}

/** One diff line: a hunk header, an added, removed or context line, or the headers
 *  before the first hunk. Text only (a patch is the agent's, never HTML). */
function diffLine(l, inHunk) {
  let kind = "meta";
  if (DIFF_MARKER.test(l)) kind = "marker";
  else if (l.startsWith("@@")) kind = "hunk";
  else if (inHunk && l.startsWith("+")) kind = "add";
  else if (inHunk && l.startsWith("-")) kind = "del";
  else if (inHunk && l.startsWith("\\")) kind = "note";
  else if (inHunk) kind = "ctx";
  return h(`div.ln.ln-${kind}`, {}, l);
}

/** A whole TaskDiff: a collapsible box per file (open unless the diff is long), the
 *  truncation marker always in view, and the files the cut patch no longer shows. */
function diffView(d) {
  const files = d.files || [];
  const byPath = new Map(files.map((f) => [f.path, f]));
  const chunks = splitPatch(d.patch || "");
  let marker = null;
  const last = chunks[chunks.length - 1];
  if (last && DIFF_MARKER.test(last[last.length - 1])) {
    marker = last.pop();
    if (!last.length) chunks.pop();
  }
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const seen = new Set();
  const boxes = chunks.map((chunk) => {
    const path = chunkPath(chunk);
    seen.add(path);
    const f = byPath.get(path);
    let inHunk = false;
    const rows = chunk.map((l) => {
      if (l.startsWith("@@")) inHunk = true;
      return diffLine(l, inHunk);
    });
    return h("details.diff-file", { open: total <= 2000 && chunk.length <= 500, dataset: { path } },
      h("summary", {}, h("code.diff-path", {}, path), " ",
        f ? (f.binary ? h("span.muted", {}, "binary") : diffCounts(f)) : null),
      h("div.diff-lines", {}, rows));
  });
  const rest = files.filter((f) => !seen.has(f.path));
  return h("div.diff", {},
    d.truncated ? h("p.diff-truncated", {},
      "This diff was cut: it was longer than the server keeps (256 KiB of patch, 5,000 files).") : null,
    boxes.length ? boxes : h("p.muted", {}, "No patch text (binary changes only)."),
    marker ? h("p.diff-marker", {}, marker) : null,
    rest.length ? h("div.diff-rest", {}, h("p.muted", {}, "Also changed (not in the patch shown):"),
      h("ul", {}, rest.map((f) => h("li", {}, h("code", {}, f.path), " ",
        f.binary ? h("span.muted", {}, "binary") : diffCounts(f))))) : null,
  );
}

/** A task's diff: a collapsible section headed by its diffstat; the diff is fetched the
 *  first time it is opened (it never changes once reported). */
function taskDiff(t, openNow) {
  const body = h("div.diff-body", {}, h("p.muted", {}, "Loading the diff…"));
  let loaded = false;
  const box = h("details.task-diff", { dataset: { taskId: t.id } },
    h("summary", {}, "Diff · ", diffstatLine(t.diffstat)), body);
  const load = async () => {
    if (loaded) return;
    loaded = true;
    try {
      body.replaceChildren(diffView(await get(`/api/v1/tasks/${t.id}/diff`)));
    } catch (e) {
      loaded = false;
      body.replaceChildren(h("p.error", {}, `Cannot load the diff: ${e.message}`));
    }
  };
  box.addEventListener("toggle", () => { if (box.open) load(); });
  if (openNow) box.open = true;
  return box;
}

/** A task's live log: an <ol> that `load()` extends with the messages after the last
 *  one shown (called on each `messages` event of the task). */
function taskLog(taskId) {
  let lastSeq = 0;
  const log = h("ol.log", { dataset: { taskId } });
  const load = async () => {
    for (;;) {
      const page = await get(`/api/v1/tasks/${taskId}/messages?after_seq=${lastSeq}&limit=1000`);
      // Follow the tail while the reader is at the bottom; leave them be if they scrolled up.
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
      for (const m of page.messages) {
        if (m.seq <= lastSeq) continue;
        lastSeq = m.seq;
        log.append(messageNode(m));
      }
      if (atBottom) log.scrollTop = log.scrollHeight;
      if (page.next === null || page.next === undefined) break;
    }
  };
  load().catch((e) => toast(e.message));
  return { log, load };
}

// A pull request's link and state badge; null without one. The URL comes from the forge:
// only http(s) links are made.
function prBadge(pr) {
  if (!pr) return null;
  const extra = [pr.review_state && pr.review_state.replace("_", " "), pr.checks_state && `checks ${pr.checks_state}`]
    .filter(Boolean).join(" · ");
  const text = `PR #${pr.number} ${pr.state}${extra ? ` · ${extra}` : ""}`;
  const attrs = { dataset: { prState: pr.state }, title: `pull request on ${pr.head_branch}` };
  if (!/^https?:\/\//.test(pr.url || "")) return h(`span.badge.pr-${pr.state}`, attrs, text);
  return h(`a.badge.pr-${pr.state}`, { ...attrs, href: pr.url, target: "_blank", rel: "noopener noreferrer" }, text);
}

function taskPanel(t, refreshIssue, log, diff) {
  const actions = [];
  if (["queued", "dispatched", "running"].includes(t.status)) {
    actions.push(h("button.danger", {
      onclick: async () => { await attempt(() => post(`/api/v1/tasks/${t.id}/cancel`)); refreshIssue(); },
    }, "Cancel"));
  }
  if (["failed", "cancelled"].includes(t.status)) {
    actions.push(h("button", {
      onclick: async () => { await attempt(() => post(`/api/v1/tasks/${t.id}/retry`)); refreshIssue(); },
    }, "Retry"));
  }
  if (t.status === "failed" && t.failure_reason === "push_failed") {
    actions.push(h("button", {
      title: "Ask the daemon to push this task's branch again",
      onclick: async () => { await attempt(() => post(`/api/v1/tasks/${t.id}/push`)); refreshIssue(); },
    }, "Retry push"));
  }
  const details = h("dl.facts", {},
    h("dt", {}, "Agent"), h("dd", {}, agentName(t.agent_id)),
    h("dt", {}, "Started"), h("dd", {}, t.started_at
      ? [new Date(t.started_at).toLocaleString(), " · ",
        t.completed_at ? `took ${elapsed(t.started_at, t.completed_at)}`
          : t.status === "running" ? runningFor(t, "running for ") : elapsed(t.started_at)]
      : `not yet (queued ${ago(t.created_at)})`),
    h("dt", {}, "Branch"), h("dd", {}, h("code", {}, t.branch_name || "—")),
    t.diffstat ? [h("dt", {}, "Changes"), h("dd", {}, diffstatLine(t.diffstat))] : null,
    t.pr ? [h("dt", {}, "Pull request"), h("dd", {}, prBadge(t.pr))] : null,
    h("dt", {}, "Work dir"), h("dd", {}, h("code", {}, t.work_dir || "—")),
    h("dt", {}, "Tokens"), h("dd", {}, usageLine(t.usage)),
    t.session_id ? [h("dt", {}, "Session"), h("dd", {}, h("code", {}, t.session_id))] : null,
  );
  const panel = h("section.task", { dataset: { taskId: t.id, status: t.status } },
    h("header", {}, h("h3", {}, "Task ", h("code", {}, t.id.slice(0, 8))), taskBadge(t), ...actions),
    t.error ? h("p.error", {}, t.error) : null,
    details,
    diff,
    log,
  );
  return panel;
}

function issueView(id) {
  const logs = new Map(); // task id → taskLog, kept across refreshes (logs stream in place)
  const diffs = new Map(); // task id → its diff box, kept across refreshes (open or not)
  let ticker = null;
  let shown = false; // the page is built (after the first successful load)
  let disposed = false; // the user went elsewhere: a late answer must not mount this page
  // The controls are built once and updated in place, so a live refresh never drops
  // what the user is typing: a field edited since the last save keeps its text.
  const title = h("input.title-input", { "aria-label": "Title", oninput: () => { title.dataset.dirty = "1"; } });
  const desc = h("textarea", { rows: 4, "aria-label": "Description", oninput: () => { desc.dataset.dirty = "1"; } });
  const status = statusSelect("backlog", { "aria-label": "Status", id: "issue-status" });
  const assigneeBox = h("span", {});
  const meta = h("p.muted", {});
  const prBox = h("div.pr-box", {});
  const comments = h("ul.comments", {});
  const tasks = h("div.tasks", {});
  const save = async (body) => {
    const ok = await attempt(() => patch(`/api/v1/issues/${id}`, body));
    if (ok) { delete title.dataset.dirty; delete desc.dataset.dirty; }
    refresh();
  };
  status.onchange = () => save({ status: status.value });
  const comment = h("textarea", { rows: 2, placeholder: "Write a comment…", "aria-label": "Comment", required: true });
  const commentForm = h("form.comment-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const ok = await attempt(() => post(`/api/v1/issues/${id}/comments`, { body: comment.value }));
      if (ok) { comment.value = ""; refresh(); }
    },
  }, comment, h("button.primary", { type: "submit" }, "Comment"));
  const edit = h("form.edit", {
    onsubmit: (e) => { e.preventDefault(); save({ title: title.value, description: desc.value }); },
  }, title, desc, h("button", { type: "submit" }, "Save"));

  const refresh = debounced(async () => {
    let d;
    try {
      [d] = await Promise.all([get(`/api/v1/issues/${id}`), loadAgents()]);
    } catch (e) {
      if (disposed) return;
      if (!shown || e.status === 404) {
        shown = false;
        mount(h("p.error", {}, `Cannot load issue: ${e.message}`), h("a", { href: "#/" }, "Back to the board"));
      } else toast(e.message);
      return;
    }
    if (!disposed) render(d);
  });

  const render = (d) => {
    const i = d.issue;
    document.title = `${i.title} · agentd`;
    if (!title.dataset.dirty) title.value = i.title;
    if (!desc.dataset.dirty) desc.value = i.description;
    if (document.activeElement !== status) status.value = i.status;
    const assigneeSel = assigneeBox.firstChild;
    if (!assigneeSel || document.activeElement !== assigneeSel) {
      const sel = agentSelect(i.assignee_agent_id || "", { "aria-label": "Assignee", id: "issue-assignee" });
      sel.onchange = () => { if (sel.value) save({ assignee_agent_id: sel.value }); };
      assigneeBox.replaceChildren(sel);
    }
    meta.textContent = `Created ${ago(i.created_at)} · updated ${ago(i.updated_at)}`;
    prBox.replaceChildren(...(i.pr ? [h("span", {}, "Pull request"), prBadge(i.pr)] : []));
    comments.replaceChildren(...d.comments.map((c) => h(`li.comment.by-${c.author_type}`, {},
      h("div.comment-head", {}, h("strong", {}, c.author_name || c.author_type), " ",
        h("span.muted", {}, `${c.author_type} · ${ago(c.created_at)}`)),
      h("div.comment-body", {}, c.body))));
    if (!d.comments.length) comments.replaceChildren(h("li.muted", {}, "No comments yet."));
    // Newest task first; each keeps its log element (it streams in place).
    // The newest task's diff opens by itself the first time it is shown.
    const newestWithDiff = [...d.tasks].reverse().find((t) => t.diffstat);
    const panels = [...d.tasks].reverse().map((t) => {
      if (!logs.has(t.id)) logs.set(t.id, taskLog(t.id));
      if (t.diffstat && !diffs.has(t.id)) diffs.set(t.id, taskDiff(t, t === newestWithDiff));
      return taskPanel(t, refresh, logs.get(t.id).log, diffs.get(t.id));
    });
    tasks.replaceChildren(...(panels.length ? panels
      : [h("p.muted", {}, i.assignee_agent_id ? "No task yet." : "No task yet: assign the issue to an agent.")]));
    if (!shown) {
      shown = true;
      mount(
        h("p", {}, h("a", { href: "#/" }, "← Board")),
        h("div.issue", {},
          h("div.issue-main", {},
            edit,
            h("h2", {}, "Comments"), comments, commentForm,
            h("h2", {}, "Tasks"), tasks),
          h("aside.issue-side", {},
            h("label", {}, "Status", status),
            h("label", {}, "Assignee", assigneeBox),
            prBox,
            meta)),
      );
    }
  };

  mount(h("p.muted", {}, "Loading issue…"));
  refresh();
  // Running tasks' elapsed time ticks without a refetch.
  ticker = tickRunning(tasks);
  return {
    onEvent: (ev) => {
      if (ev.kind === "resync") {
        refresh();
        for (const l of logs.values()) l.load().catch((e) => toast(e.message));
        return;
      }
      if (ev.issue_id !== id && ev.kind !== "agent") return;
      if (ev.kind === "messages" && logs.has(ev.task_id)) {
        logs.get(ev.task_id).load().catch((e) => toast(e.message));
      } else refresh();
    },
    dispose: () => { disposed = true; clearInterval(ticker); document.title = "agentd"; },
  };
}

// ---------------------------------------------------------------- runtimes

/** How a runtime's agent runs are isolated, as its daemon reported it. Anything but
 *  `bwrap` is a warning: `off` runs agents with the daemon's own rights, `unavailable`
 *  means the daemon refuses tasks, and an unknown state is not known to be safe. */
const SANDBOX_TEXT = {
  bwrap: ["sandboxed (bwrap)", "Agent runs are isolated with bubblewrap."],
  off: ["⚠ not sandboxed", "The sandbox is turned off: agents run with the daemon's own files, tokens and keys."],
  unavailable: ["⚠ sandbox unavailable", "The sandbox is configured but cannot start on this machine: the daemon refuses tasks."],
};
function sandboxBadge(sandbox) {
  if (!sandbox) return h("span.badge.sandbox-none", { dataset: { sandbox: "-" }, title: "The daemon did not say (an older daemon)." }, "—");
  const [text, title] = SANDBOX_TEXT[sandbox] || [`⚠ ${sandbox}`, "A sandbox state this board does not know."];
  const cls = sandbox === "bwrap" ? "sandbox-ok" : "sandbox-warn";
  return h(`span.badge.${cls}`, { dataset: { sandbox }, title }, text);
}

function runtimesView() {
  const body = h("tbody", {});
  const refresh = debounced(async () => {
    let rts;
    try { rts = await get(`/api/v1/workspaces/${state.workspace}/runtimes`); } catch (e) { toast(e.message); return; }
    body.replaceChildren(...rts.map((r) => h("tr", { dataset: { runtimeId: r.id, provider: r.provider } },
      h("td", { dataset: { label: "Runtime" } }, h("strong", {}, r.name), h("div.muted", {}, h("code", {}, r.id))),
      h("td", { dataset: { label: "Provider" } }, r.provider),
      h("td", { dataset: { label: "Version" } }, r.version || "—"),
      h("td", { dataset: { label: "Device" } }, r.device_name || "—"),
      h("td", { dataset: { label: "Status" } }, h(`span.badge.rt-${r.status}`, {}, r.status)),
      h("td", { dataset: { label: "Sandbox" } }, sandboxBadge(r.sandbox)),
      h("td", { dataset: { label: "Last seen" } }, ago(r.last_seen_at)),
      h("td", {}, h("button.danger", {
        onclick: async () => {
          if (!confirm(`Delete runtime ${r.name}? Its running tasks fail; its daemon registers it again under a new id.`)) return;
          await attempt(() => api("DELETE", `/api/v1/runtimes/${r.id}`));
          refresh();
        },
      }, "Delete")))));
    if (!rts.length) body.replaceChildren(h("tr", {}, h("td", { colSpan: 8 }, "No runtime yet: start `agentd daemon` on a machine with an agent CLI.")));
  });
  mount(h("h1", {}, "Runtimes"),
    h("table.table", {}, h("thead", {}, h("tr", {}, ["Runtime", "Provider", "Version", "Device", "Status", "Sandbox", "Last seen", ""].map((c) => h("th", {}, c)))), body));
  refresh();
  const timer = setInterval(refresh, 5000);
  return { onEvent: (ev) => { if (ev.kind === "runtime" || ev.kind === "resync") refresh(); }, dispose: () => clearInterval(timer) };
}

// ---------------------------------------------------------------- agents

function agentsView() {
  let runtimes = [];
  const editing = new Map(); // agent id → its open edit form, kept across live refreshes
  const list = h("div.agents", {});
  const runtimeOptions = (selected) => {
    const opts = runtimes.map((r) => h("option", { value: r.id, selected: r.id === selected }, `${r.name} · ${r.status}`));
    // An agent bound to a deleted runtime: say so instead of silently showing another.
    if (selected && !runtimes.some((r) => r.id === selected)) {
      opts.unshift(h("option", { value: "", selected: true, disabled: true }, "(its runtime was deleted: pick one)"));
    }
    return opts;
  };

  const agentForm = (a, onDone, onCancel) => {
    const name = h("input", { value: a ? a.name : "", required: true, placeholder: "Name", "aria-label": "Name" });
    const rt = h("select", { "aria-label": "Runtime", required: true }, runtimeOptions(a ? a.runtime_id : ""));
    const model = h("input", { value: a ? a.model : "", placeholder: "Model (optional)", "aria-label": "Model" });
    const instr = h("textarea", { rows: 3, placeholder: "Instructions", "aria-label": "Instructions" });
    instr.value = a ? a.instructions : "";
    // custom_env values are write-only: the API shows them masked, and sending a masked
    // value back keeps the stored one.
    const env = h("textarea", { rows: 2, placeholder: "Environment: KEY=VALUE per line", "aria-label": "Environment" });
    env.value = a ? Object.entries(a.custom_env || {}).map(([k, v]) => `${k}=${v}`).join("\n") : "";
    const form = h("form.agent-form", {
      onsubmit: async (e) => {
        e.preventDefault();
        const customEnv = {};
        for (const line of env.value.split("\n")) {
          const at = line.indexOf("=");
          if (at > 0) customEnv[line.slice(0, at).trim()] = line.slice(at + 1);
        }
        const body = { name: name.value, runtime_id: rt.value, model: model.value, instructions: instr.value, custom_env: customEnv };
        const ok = await attempt(() => (a ? patch(`/api/v1/agents/${a.id}`, body)
          : post(`/api/v1/workspaces/${state.workspace}/agents`, body)));
        if (ok) onDone(form);
      },
    }, name, rt, model, instr, env, h("div.row", {},
      h("button.primary", { type: "submit" }, a ? "Save" : "Create agent"),
      onCancel ? h("button", { type: "button", onclick: onCancel }, "Cancel") : null));
    // Live refreshes update the runtime choices without touching what was typed.
    form.updateRuntimes = () => {
      if (document.activeElement === rt) return;
      const keep = rt.value;
      rt.replaceChildren(...runtimeOptions(keep || (a ? a.runtime_id : "")));
      if (runtimes.some((r) => r.id === keep)) rt.value = keep;
    };
    return form;
  };

  const newBox = h("div", { id: "new-agent" });
  let newForm = null;
  const refresh = debounced(async () => {
    try {
      [runtimes] = await Promise.all([get(`/api/v1/workspaces/${state.workspace}/runtimes`), loadAgents()]);
    } catch (e) { toast(e.message); return; }
    const rtName = (id) => {
      const r = runtimes.find((x) => x.id === id);
      return r ? `${r.name} (${r.status})` : "a deleted runtime (edit to rebind)";
    };
    list.replaceChildren(...state.agents.map((a) => {
      const box = h("section.agent", { dataset: { agentId: a.id } });
      const open = editing.get(a.id);
      if (open) {
        open.updateRuntimes();
        box.append(open);
        return box;
      }
      box.replaceChildren(...[
        h("header", {}, h("h3", {}, a.name), h("button", {
          onclick: () => {
            const done = () => { editing.delete(a.id); refresh(); };
            const form = agentForm(a, done, done);
            editing.set(a.id, form);
            box.replaceChildren(form);
            form.querySelector("input").focus();
          },
        }, "Edit")),
        h("p.muted", {}, `on ${rtName(a.runtime_id)}${a.model ? ` · model ${a.model}` : ""}`),
        Object.keys(a.custom_env || {}).length
          ? h("p.muted.env", {}, "env: ", Object.entries(a.custom_env).map(([k, v]) => `${k}=${v}`).join(", "))
          : null,
        a.instructions ? h("p", {}, a.instructions) : null].filter(Boolean));
      return box;
    }));
    if (!state.agents.length) list.replaceChildren(h("p.muted", {}, "No agent yet."));
    if (!runtimes.length) {
      newForm = null;
      newBox.replaceChildren(h("p.muted", {}, "Register a runtime first: start ", h("code", {}, "agentd daemon"), "."));
    } else if (!newForm) {
      newForm = agentForm(null, (f) => { f.reset(); refresh(); });
      newBox.replaceChildren(newForm);
    } else newForm.updateRuntimes();
  });
  mount(h("h1", {}, "Agents"), h("details.create", {}, h("summary", {}, "New agent"), newBox), list);
  refresh();
  return { onEvent: (ev) => { if (["agent", "runtime", "resync"].includes(ev.kind)) refresh(); } };
}

// ---------------------------------------------------------------- tokens

/** API tokens the signed-in token can see (itself and those it created; the admin sees
 *  all): kind, name, dates, revoke; and a form that creates one and shows its secret once. */
function tokensView() {
  const body = h("tbody", {});
  const created = h("div", { id: "token-created" });
  const date = (iso, none) => (iso ? h("span", { title: iso }, new Date(iso).toLocaleString()) : none);
  const refresh = async () => {
    let list;
    try { list = await get("/api/v1/tokens"); } catch (e) { toast(e.message); return; }
    body.replaceChildren(...list.map((t) => h("tr", { dataset: { tokenId: t.id, kind: t.kind } },
      h("td", { dataset: { label: "Name" } }, h("strong", {}, t.name), t.current ? h("span.muted", {}, " (this token)") : null,
        h("div.muted", {}, h("code", {}, t.id))),
      h("td", { dataset: { label: "Kind" } }, h(`span.badge.kind-${t.kind}`, {}, t.kind)),
      h("td", { dataset: { label: "Created" } }, date(t.created_at, "—")),
      h("td", { dataset: { label: "Last used" } }, t.last_used_at ? ago(t.last_used_at) : "never"),
      h("td", { dataset: { label: "Expires" } }, date(t.expires_at, "never")),
      h("td", { dataset: { label: "Revoked" } }, date(t.revoked_at, "—")),
      h("td", {}, t.revoked_at || t.kind === "admin" ? null : h("button.danger", {
        onclick: async () => {
          const warn = t.current ? " This is the token you are signed in with." : "";
          if (!confirm(`Revoke token ${t.name}? It stops working at once.${warn}`)) return;
          const ok = await attempt(() => api("DELETE", `/api/v1/tokens/${t.id}`));
          if (ok && t.current) { signOut("Signed out: this token was revoked."); return; }
          refresh();
        },
      }, "Revoke")))));
  };
  const name = h("input", { placeholder: "Name (e.g. laptop)", "aria-label": "Token name" });
  const kind = h("select", { "aria-label": "Kind" },
    h("option", { value: "member" }, "member (the board, the CLI)"),
    h("option", { value: "daemon" }, "daemon (agentd daemon on a machine)"));
  const expiry = h("select", { "aria-label": "Expires" },
    [["never", ""], ["in 1 day", 86400], ["in 30 days", 30 * 86400], ["in 90 days", 90 * 86400], ["in 1 year", 365 * 86400]]
      .map(([label, secs]) => h("option", { value: String(secs) }, label)));
  const form = h("form.token-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const req = { name: name.value, kind: kind.value, workspace_ids: [state.workspace] };
      if (expiry.value) req.expires_in_secs = Number(expiry.value);
      const t = await attempt(() => post("/api/v1/tokens", req));
      if (!t) return;
      form.reset();
      created.replaceChildren(h("div.secret", { role: "status" },
        h("p", {}, `New ${t.kind} token “${t.name}” for this workspace. Copy it now: it is shown only once.`),
        h("code", { id: "new-token" }, t.token)));
      refresh();
    },
  }, name, kind, expiry, h("button.primary", { type: "submit" }, "Create token"));
  mount(h("h1", {}, "Tokens"),
    h("details.create", {}, h("summary", {}, "New token"), form), created,
    h("table.table", {}, h("thead", {}, h("tr", {}, ["Name", "Kind", "Created", "Last used", "Expires", "Revoked", ""].map((c) => h("th", {}, c)))), body));
  refresh();
  return {};
}

// ---------------------------------------------------------------- boot

if (state.token) start(); else renderSignIn();
