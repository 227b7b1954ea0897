// The agentd web board: a client of the user API (/api/v1) and of the workspace's live
// event stream. Views are hash routes: #/ (board, with its filters as #/?q=…&agent=…&status=…),
// #/issues/ID, #/runtimes, #/agents, #/tokens, #/members, #/audit, #/signin/CODE (a one-time
// sign-in link) and #/invite/TOKEN (an invitation). The board signs in with an email and a
// password (an HttpOnly session cookie the script never sees; state-changing requests echo
// the session's CSRF token in X-CSRF-Token) or, as a fallback, a pasted API token.
// Untrusted text is only ever set with textContent (see h()); nothing is parsed as HTML —
// Markdown too is turned into DOM nodes by markdown() below.

const STATUSES = ["backlog", "todo", "in_progress", "in_review", "done", "cancelled"];
const STATUS_LABEL = {
  backlog: "Backlog", todo: "To do", in_progress: "In progress",
  in_review: "In review", done: "Done", cancelled: "Cancelled",
};
// The token is kept per browser (every tab of it is signed in), until sign-out or a 401.
const TOKEN_KEY = "agentd.token";
/** The id of a token this board got from a sign-in link (`board session`): signing out
 *  revokes it on the server. A pasted token is never revoked by signing out. */
const SESSION_KEY = "agentd.session";
/** Set while this browser holds a session cookie (which scripts cannot read), so a
 *  reload knows to resume it instead of asking to sign in. */
const COOKIE_KEY = "agentd.cookie";
const WORKSPACE_KEY = "agentd.workspace";
const store = window.localStorage;

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
  token: store.getItem(TOKEN_KEY),
  workspace: store.getItem(WORKSPACE_KEY),
  workspaces: [],
  agents: [],
  // A cookie session: its CSRF token and user (null with a bearer token).
  csrf: null,
  user: null,
  roles: [], // [{workspace_id, role}] of GET /api/v1/me
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
  for (const c of children.flat(Infinity)) {
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
  const t = h(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status" }, message);
  document.body.append(t);
  setTimeout(() => t.remove(), 6000);
}

/** "42s", "5m", "3h", "2d", "4mo", "1y": how long ago `iso` was, short. */
function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  if (s < 30 * 86400) return `${Math.floor(s / 86400)}d`;
  if (s < 365 * 86400) return `${Math.floor(s / (30 * 86400))}mo`;
  return `${Math.floor(s / (365 * 86400))}y`;
}

function ago(iso) {
  if (!iso) return "never";
  return `${age(iso)} ago`;
}

/** The one way times are shown: relative ("3h ago", or "3h" when `short`), the full
 *  local date and time on hover, the exact instant in `datetime`. Kept current by tickAges. */
function timeAgo(iso, short = false) {
  if (!iso) return h("span", {}, "never");
  return h("time", {
    datetime: iso, title: new Date(iso).toLocaleString(),
    dataset: { age: short ? "short" : "long" },
  }, short ? age(iso) : ago(iso));
}

function elapsed(fromIso, toIso) {
  if (!fromIso) return "";
  const end = toIso ? Date.parse(toIso) : Date.now();
  const s = Math.max(0, Math.round((end - Date.parse(fromIso)) / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m}m ${s % 60}s` : `${s}s`;
}

// ---------------------------------------------------------------- Markdown

/** Renders Markdown `src` as DOM nodes under a `div.markdown`: headings, paragraphs,
 *  emphasis, strong, inline code, fenced code blocks, ordered and unordered lists,
 *  blockquotes, rules and links (http, https and mailto only, opened with
 *  rel="noopener noreferrer"). Everything else — HTML included — stays text. No HTML is
 *  ever parsed: every node is built with createElement/createTextNode. */
function markdown(src) {
  return h("div.markdown", {}, mdBlocks(String(src || "").replace(/\r\n?/g, "\n").split("\n"), 0));
}

const MD_FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)\s*$/;
const MD_HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const MD_QUOTE = /^ {0,3}> ?(.*)$/;
const MD_UL = /^ {0,3}([-*+])\s+(.*)$/;
const MD_OL = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/;
const MD_RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;

function mdBlocks(lines, depth) {
  const out = [];
  let i = 0;
  const startsBlock = (l) => MD_FENCE.test(l) || MD_HEADING.test(l) || MD_QUOTE.test(l)
    || MD_UL.test(l) || MD_OL.test(l) || MD_RULE.test(l);
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) { i += 1; continue; }
    if ((m = MD_FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i += 1;
      while (i < lines.length && !(lines[i].trim().startsWith(fence[0].repeat(fence.length))
        && /^\s*[`~]+\s*$/.test(lines[i]))) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end)
      out.push(h("pre", { tabindex: "0" }, h("code", m[2] ? { dataset: { lang: m[2] } } : {}, body.join("\n"))));
    } else if ((m = MD_HEADING.exec(line))) {
      // Headings of a description sit under the page's h1: # is an h2.
      const level = Math.min(6, m[1].length + 1);
      out.push(h(`h${level}`, {}, mdInline(m[2])));
      i += 1;
    } else if (MD_RULE.test(line)) {
      out.push(h("hr", {}));
      i += 1;
    } else if (MD_QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && (m = MD_QUOTE.exec(lines[i]))) { body.push(m[1]); i += 1; }
      out.push(h("blockquote", {}, depth < 8 ? mdBlocks(body, depth + 1) : body.join("\n")));
    } else if (MD_UL.test(line) || MD_OL.test(line)) {
      const ordered = MD_OL.test(line);
      const re = ordered ? MD_OL : MD_UL;
      const items = [];
      const first = ordered ? Number(MD_OL.exec(line)[1]) : 1;
      while (i < lines.length) {
        const l = lines[i];
        if ((m = re.exec(l))) { items.push([m[2]]); i += 1; continue; }
        // A continuation: an indented line, or a lazy line right after an item's text.
        if (l.trim() && items.length && (/^\s{2,}/.test(l) || !startsBlock(l))) {
          items[items.length - 1].push(l.trim());
          i += 1;
          continue;
        }
        break;
      }
      out.push(h(ordered ? "ol" : "ul", ordered && first !== 1 ? { start: String(first) } : {},
        items.map((it) => h("li", {}, mdInline(it.join("\n"))))));
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() && !(para.length && startsBlock(lines[i]))) {
        para.push(lines[i].trim());
        i += 1;
      }
      out.push(h("p", {}, mdInline(para.join("\n"))));
    }
  }
  return out;
}

/** A link target a rendered link may have: absolute http(s) or mailto, else null. */
function safeHref(url) {
  let u;
  try { u = new URL(url); } catch { return null; }
  return ["http:", "https:", "mailto:"].includes(u.protocol) ? u.href : null;
}

// Inline spans, earliest match first: `code`, [text](url), <autolink>, **strong**,
// __strong__, *em*, _em_. What matches nothing is text, as written.
const MD_INLINE = [
  ["code", /`([^`\n]+?)`/],
  ["link", /\[([^\]\n]+)\]\(\s*<?([^\s()<>]+)>?\s*\)/],
  ["auto", /<((?:https?:\/\/|mailto:)[^\s<>]+)>/],
  ["strong", /\*\*(?=\S)([\s\S]*?\S)\*\*/],
  ["strong", /(?<![\w])__(?=\S)([\s\S]*?\S)__(?![\w])/],
  ["em", /\*(?=[^\s*])([^*]*?[^\s*])\*/],
  ["em", /(?<![\w])_(?=[^\s_])([^_]*?[^\s_])_(?![\w])/],
];

function mdInline(text, depth = 0) {
  const out = [];
  let rest = text;
  while (rest) {
    let best = null;
    for (const [kind, re] of MD_INLINE) {
      const m = re.exec(rest);
      if (m && (!best || m.index < best.m.index)) best = { kind, m };
    }
    if (!best || depth > 6) { out.push(rest); break; }
    const { kind, m } = best;
    if (m.index) out.push(rest.slice(0, m.index));
    if (kind === "code") out.push(h("code", {}, m[1]));
    else if (kind === "link" || kind === "auto") {
      const href = safeHref(kind === "link" ? m[2] : m[1]);
      if (href) {
        out.push(h("a", { href, rel: "noopener noreferrer", target: "_blank" },
          kind === "link" ? mdInline(m[1], depth + 1) : m[1]));
      } else out.push(m[0]); // javascript:, data:, relative…: the source, as text
    } else out.push(h(kind, {}, mdInline(m[1], depth + 1)));
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.code = data && data.code;
    this.data = data;
  }
}

async function api(method, path, body, { auth = true } = {}) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (auth && state.token) opts.headers.Authorization = `Bearer ${state.token}`;
  else if (state.csrf && method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
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
    // A refused token ends the session (in every tab); during sign-in the form shows
    // the error itself.
    if (auth && resp.status === 401 && (store.getItem(TOKEN_KEY) || state.csrf)) signOut(`Signed out: ${msg}. Sign in again.`);
    throw new ApiError(resp.status, msg, data);
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

const signedIn = () => Boolean(state.token || state.csrf);

/** The caller's role in the current workspace (`owner` for a server admin). */
function myRole() {
  const r = state.roles.find((x) => x.workspace_id === state.workspace);
  return r ? r.role : null;
}
const isAdminHere = () => ["admin", "owner"].includes(myRole());

function signOut(message) {
  store.removeItem(TOKEN_KEY);
  store.removeItem(SESSION_KEY);
  state.token = null;
  state.csrf = null;
  state.user = null;
  store.removeItem(COOKIE_KEY);
  stopStream();
  renderSignIn(message);
}

// Another tab signed in or out: follow it.
window.addEventListener("storage", (e) => {
  if (e.key !== TOKEN_KEY) return;
  if (!e.newValue && state.token) { state.token = null; stopStream(); renderSignIn("Signed out in another tab."); }
  else if (e.newValue && e.newValue !== state.token) { state.token = e.newValue; start(); }
});

function renderSignIn(message) {
  if (state.view && state.view.dispose) state.view.dispose();
  state.view = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("session").hidden = true;
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", required: true,
    placeholder: "agd_…", "aria-describedby": "token-help",
  });
  const err = h("p.error", { id: "signin-error", role: "alert" }, message || "");
  const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  // Single sign-on, when the server has an OpenID provider configured: the button leaves
  // for the provider, which sends the browser back with the session cookie set.
  const sso = h("div.sso", { hidden: true });
  const byPassword = h("form.signin", {
    "aria-labelledby": "signin-heading",
    onsubmit: async (e) => {
      e.preventDefault();
      let session;
      try {
        session = await api("POST", "/api/v1/session", { email: email.value, password: password.value }, { auth: false });
      } catch (ex) {
        err.textContent = `Sign-in failed: ${ex.message}`;
        return;
      }
      store.removeItem(TOKEN_KEY);
      store.setItem(COOKIE_KEY, "1");
      state.token = null;
      state.csrf = session.csrf_token;
      state.user = session.user;
      start();
    },
  },
    h("h1", { id: "signin-heading" }, "Sign in to agentd"),
    h("label", { for: "email" }, "Email"), email,
    h("label", { for: "password" }, "Password"), password,
    h("button.primary", { type: "submit", id: "signin-password" }, "Sign in"),
    sso,
  );
  const form = h("form.signin", {
    "aria-label": "Sign in with an API token",
    onsubmit: async (e) => {
      e.preventDefault();
      state.token = input.value.trim();
      try {
        await api("GET", "/api/v1/me", undefined, { auth: true });
      } catch (ex) {
        state.token = null;
        err.textContent = `Sign-in failed: ${ex.message}`;
        return;
      }
      store.setItem(TOKEN_KEY, state.token);
      start();
    },
  },
    h("h2", {}, "Or use an API token"),
    h("p.muted", { id: "token-help" }, "Open the one-time sign-in link ",
      h("code", {}, "agentd up"), " prints (or one from ", h("code", {}, "POST /api/v1/signin-codes"),
      "), or paste an API token (",
      h("code", {}, "agentd token create"), ", or the token ", h("code", {}, "agentd up"),
      " wrote to its data dir). This browser keeps it until you sign out."),
    h("label", { for: "token" }, "API token"),
    input,
    h("button", { type: "submit", id: "signin" }, "Sign in with the token"),
  );
  mount(byPassword, err, form);
  email.focus();
  api("GET", "/api/v1/session/providers", undefined, { auth: false }).then((p) => {
    if (!p || !p.oidc) return;
    sso.append(h("p.muted", {}, "or"), h("button", {
      type: "button", id: "signin-oidc",
      onclick: () => { store.setItem(COOKIE_KEY, "1"); location.assign(p.oidc.login_url); },
    }, `Sign in with ${p.oidc.name}`));
    sso.hidden = false;
  }).catch(() => {});
}

/** A board session from the cookie, if the browser has one (after a reload). */
async function resumeSession() {
  if (!store.getItem(COOKIE_KEY)) return false;
  try {
    const s = await api("GET", "/api/v1/session", undefined, { auth: false });
    state.csrf = s.csrf_token;
    state.user = s.user;
    return true;
  } catch {
    store.removeItem(COOKIE_KEY);
    return false;
  }
}

/** #/signin/CODE: exchanges the one-time code for a board session token (no bearer
 *  token is sent), keeps it, and takes the code out of the address bar and history. */
async function signInWithCode(code) {
  history.replaceState(null, "", `${location.pathname}${location.search}#/`);
  mount(h("p.muted", { role: "status" }, "Signing in…"));
  let created;
  try {
    created = await api("POST", "/api/v1/signin", { code }, { auth: false });
  } catch (e) {
    const why = e.status === 401
      ? "This sign-in link is invalid, already used or expired. Ask for a new one, or paste a token."
      : `Sign-in failed: ${e.message}`;
    if (state.token) { toast(why); start(); } else renderSignIn(why);
    return;
  }
  state.token = created.token;
  store.setItem(TOKEN_KEY, state.token);
  store.setItem(SESSION_KEY, created.id);
  start();
}

/** Sign out: a board session from a sign-in link is revoked on the server first (its
 *  token is useless from then on, also if it was copied); a pasted token stays valid. */
async function signOutNow() {
  if (state.csrf) {
    try { await api("DELETE", "/api/v1/session"); } catch (e) { toast(`Sign-out failed: ${e.message}`); }
    signOut("Signed out.");
    return;
  }
  const session = store.getItem(SESSION_KEY);
  if (session) {
    try { await api("DELETE", `/api/v1/tokens/${encodeURIComponent(session)}`); }
    catch (e) { if (state.token) toast(`The session could not be revoked: ${e.message}`); }
  }
  if (state.token) signOut(session ? "Signed out; this browser's session was revoked." : "Signed out.");
}

async function start() {
  let list;
  try {
    list = await get("/api/v1/workspaces");
  } catch (e) {
    if (signedIn()) renderSignIn(e.message);
    return;
  }
  state.workspaces = list;
  try { state.roles = (await get("/api/v1/me")).roles || []; } catch { state.roles = []; }
  if (!list.length) {
    mount(h("p.muted", {}, "This token sees no workspace. Create one with ",
      h("code", {}, "agentd workspace create NAME"), "."));
    return;
  }
  if (!list.some((w) => w.id === state.workspace)) state.workspace = list[0].id;
  store.setItem(WORKSPACE_KEY, state.workspace);
  const sel = document.getElementById("workspace");
  sel.replaceChildren(...list.map((w) => h("option", { value: w.id, selected: w.id === state.workspace },
    w.key ? `${w.name} (${w.key})` : w.name)));
  sel.onchange = () => {
    state.workspace = sel.value;
    store.setItem(WORKSPACE_KEY, state.workspace);
    startStream();
    route();
  };
  const who = document.getElementById("whoami");
  if (who) who.textContent = state.user ? state.user.email : "token";
  document.getElementById("nav").hidden = false;
  document.getElementById("session").hidden = false;
  document.getElementById("signout").onclick = () => signOutNow();
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
          headers: state.token
            ? { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" }
            : { Accept: "text/event-stream" },
          credentials: "same-origin",
          signal: ctl.signal,
        });
        if (resp.status === 401) { signOut("Signed out: the token was refused. Sign in again."); return; }
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
  const hash = location.hash.replace(/^#/, "") || "/";
  const signin = hash.match(/^\/signin\/([\w-]+)$/);
  if (signin) return signInWithCode(signin[1]);
  const invite = hash.match(/^\/invite\/(agi_[0-9a-f]+)$/);
  if (invite) return inviteView(invite[1]);
  if (!signedIn()) return renderSignIn();
  if (state.view && state.view.dispose) state.view.dispose();
  state.view = null;
  const m = hash.match(/^\/issues\/([\w-]+)$/);
  let name = "board";
  if (m) { name = "issue"; state.view = issueView(m[1]); }
  else if (hash === "/runtimes") { name = "runtimes"; state.view = runtimesView(); }
  else if (hash === "/agents") { name = "agents"; state.view = agentsView(); }
  else if (hash === "/tokens") { name = "tokens"; state.view = tokensView(); }
  else if (hash === "/members") { name = "members"; state.view = membersView(); }
  else if (hash === "/audit") { name = "audit"; state.view = auditView(); }
  else state.view = boardView(new URLSearchParams(hash.replace(/^\/\??/, "")));
  // The admin pages are links for workspace admins and owners only (the server refuses
  // the others anyway).
  for (const a of document.querySelectorAll("[data-admin]")) a.hidden = !isAdminHere();
  for (const a of document.querySelectorAll("[data-nav]")) {
    const on = a.dataset.nav === name || (name === "issue" && a.dataset.nav === "board");
    a.classList.toggle("active", on);
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

window.addEventListener("hashchange", route);

async function loadAgents() {
  // Runtimes too: a run says where it ran, and a pool agent how many runtimes it has.
  [state.agents, state.runtimes] = await Promise.all([
    get(`/api/v1/workspaces/${state.workspace}/agents`),
    get(`/api/v1/workspaces/${state.workspace}/runtimes`).catch(() => state.runtimes || []),
  ]);
  return state.agents;
}

const runtimeName = (id) => ((state.runtimes || []).find((r) => r.id === id) || {}).name || (id ? id.slice(0, 8) : "");

/** Where an agent runs: its runtime, or its pool ("any claude +gpu · 2 runtimes, 1 online"). */
function agentPlace(a, runtimes) {
  if (!a.pool) {
    const r = runtimes.find((x) => x.id === a.runtime_id);
    return r ? `${r.name} (${r.status})` : "a deleted runtime (edit to rebind)";
  }
  const what = [];
  if (a.pool.provider) what.push(`any ${a.pool.provider}`);
  for (const l of a.pool.labels || []) what.push(`+${l}`);
  if ((a.pool.runtime_ids || []).length) what.push("listed runtimes");
  if (a.problem) return `pool (${what.join(" ")}): ${a.problem}`;
  const members = a.pool_runtimes || [];
  const online = members.filter((id) => (runtimes.find((r) => r.id === id) || {}).status === "online").length;
  return `pool (${what.join(" ")}) · ${members.length} runtime${members.length === 1 ? "" : "s"}, ${online} online`;
}

const agentName = (id) => (state.agents.find((a) => a.id === id) || {}).name || "unassigned";

/** Agents to pick from, and "unassigned" (PATCH assignee_agent_id "" unassigns). */
function agentSelect(selected, attrs = {}) {
  return h("select", attrs,
    h("option", { value: "", selected: !selected }, "— unassigned —"),
    state.agents.map((a) => h("option", { value: a.id, selected: a.id === selected }, a.name)));
}

function statusSelect(selected, attrs = {}) {
  return h("select", attrs, STATUSES.map((s) => h("option", { value: s, selected: s === selected }, STATUS_LABEL[s])));
}

/** Ticks every `[data-running-since]` element under `root` (elapsed time of running
 *  tasks) once a second, and every relative `<time data-age>` every 15 s; returns the
 *  interval to clear. */
function tickRunning(root) {
  let n = 0;
  return setInterval(() => {
    for (const el of root.querySelectorAll("[data-running-since]")) {
      el.textContent = (el.dataset.prefix || "") + elapsed(el.dataset.runningSince);
    }
    n += 1;
    if (n % 15) return;
    for (const el of root.querySelectorAll("time[data-age]")) {
      const iso = el.getAttribute("datetime");
      el.textContent = el.dataset.age === "short" ? age(iso) : ago(iso);
    }
  }, 1000);
}

/** A running task's elapsed time, kept current by tickRunning. */
function runningFor(t, prefix = "") {
  return h("span", { dataset: { runningSince: t.started_at, prefix } }, prefix + elapsed(t.started_at));
}

const FAILURE_LABEL = {
  timeout: "timed out", inactivity_timeout: "went silent", cancelled: "cancelled",
  agent_error: "agent error", agent_not_found: "agent CLI not found",
  environment_error: "environment error", repo_not_allowed: "repository not allowed",
  daemon_shutdown: "daemon shut down", disk_full: "disk full", orphaned: "orphaned",
  runtime_offline: "runtime offline", push_failed: "push failed",
  model_unavailable: "model API busy",
};

/** Why a run failed, in a few words: its error's first line (cut), else its reason. */
function failureText(t) {
  const first = (t.error || "").split("\n")[0].trim();
  if (first) return first.length > 60 ? `${first.slice(0, 59)}…` : first;
  return FAILURE_LABEL[t.failure_reason] || t.failure_reason || "unknown reason";
}

function taskBadge(t) {
  if (!t) return null;
  const cls = `span.badge.task-${t.status}`;
  const attrs = { dataset: { taskStatus: t.status }, title: `run ${t.id.slice(0, 8)}` };
  if (t.status === "running" && t.started_at) {
    return h(cls, { ...attrs, dataset: { ...attrs.dataset, runningSince: t.started_at, prefix: "Running " } },
      `Running ${elapsed(t.started_at)}`);
  }
  let text = { queued: "Queued", dispatched: "Starting", completed: "Completed", failed: "Failed", cancelled: "Cancelled" }[t.status] || t.status;
  if (t.status === "failed") {
    text = `Failed: ${failureText(t)}`;
    if (t.error) attrs.title = t.error;
  }
  if (t.status === "cancelled" && t.cancelled_by && t.cancelled_by.name) text = `Cancelled by ${t.cancelled_by.name}`;
  return h(cls, attrs, text);
}

// ---------------------------------------------------------------- board

/** The issue's name for labels: "AGD-3 Fix login" (its key when the server has one). */
const issueLabel = (i) => (i.key ? `${i.key} ${i.title}` : i.title);

function boardView(params) {
  let issues = [];
  let loaded = false;
  let ticker = null;
  let newAssignee = null; // the new-issue form's assignee select (agents come and go)
  const columns = {};
  const filter = {
    q: params.get("q") || "",
    agent: params.get("agent") || "",
    status: params.get("status") || "",
  };

  const newForm = () => {
    const title = h("input", { id: "new-title", name: "title", required: true, placeholder: "What needs doing?" });
    const desc = h("textarea", { id: "new-description", name: "description", rows: 3, placeholder: "Markdown welcome" });
    const assignee = agentSelect("", { id: "new-assignee", name: "assignee" });
    newAssignee = assignee;
    const status = statusSelect("todo", { id: "new-status", name: "status" });
    const form = h("form.new-issue", {
      "aria-label": "New issue",
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { title: title.value, description: desc.value, status: status.value };
        if (assignee.value) body.assignee_agent_id = assignee.value;
        const created = await attempt(() => post(`/api/v1/workspaces/${state.workspace}/issues`, body));
        if (created) {
          // Only the text is cleared: status (To do) and assignee stay for the next one.
          title.value = ""; desc.value = "";
          title.focus();
          if (body.status === "backlog" && body.assignee_agent_id) {
            toast("Created in Backlog: the agent starts when you move it to To do.", "info");
          } else toast(`Created ${created.key || created.title}.`, "info");
          refresh();
        }
      },
    },
      h("label.field", { for: "new-title" }, "Title"), title,
      h("label.field", { for: "new-description" }, "Description"), desc,
      h("div.row", {},
        h("label", { for: "new-assignee" }, "Assign to"), assignee,
        h("label", { for: "new-status" }, "Status"), status,
        h("button.primary", { type: "submit" }, "Create issue")));
    return form;
  };

  // ---- filters: instant, over the loaded issues, kept in the URL (#/?q=…&agent=…&status=…)
  const search = h("input", {
    id: "filter-q", type: "search", value: filter.q, placeholder: "Title, description or key",
    autocomplete: "off",
    oninput: () => { filter.q = search.value; filtersChanged(); },
  });
  const agentFilter = h("select", {
    id: "filter-agent",
    onchange: () => { filter.agent = agentFilter.value; filtersChanged(); },
  });
  const statusFilter = h("select", {
    id: "filter-status",
    onchange: () => { filter.status = statusFilter.value; filtersChanged(); },
  }, h("option", { value: "" }, "All statuses"),
  STATUSES.map((s) => h("option", { value: s, selected: s === filter.status }, STATUS_LABEL[s])));
  const fillAgentFilter = () => {
    agentFilter.replaceChildren(h("option", { value: "" }, "All agents"),
      h("option", { value: "none" }, "Unassigned"),
      state.agents.map((a) => h("option", { value: a.id }, a.name)));
    agentFilter.value = filter.agent;
    if (agentFilter.value !== filter.agent) agentFilter.value = "";
  };
  const clear = h("button", {
    type: "button", id: "filter-clear",
    onclick: () => {
      filter.q = ""; filter.agent = ""; filter.status = "";
      search.value = ""; agentFilter.value = ""; statusFilter.value = "";
      filtersChanged();
      search.focus();
    },
  }, "Clear filters");
  const summary = h("p.filter-summary", { id: "filter-summary", role: "status" });
  const filters = h("form.filters", { role: "search", "aria-label": "Filter issues", onsubmit: (e) => e.preventDefault() },
    // Each label stays with its control when the row wraps.
    h("span.filter.filter-q", {}, h("label", { for: "filter-q" }, "Search"), search),
    h("span.filter", {}, h("label", { for: "filter-agent" }, "Agent"), agentFilter),
    h("span.filter", {}, h("label", { for: "filter-status" }, "Status"), statusFilter),
    clear);
  const active = () => filter.q.trim() || filter.agent || filter.status;
  const filtersChanged = () => {
    const p = new URLSearchParams();
    for (const k of ["q", "agent", "status"]) if (filter[k]) p.set(k, filter[k]);
    const qs = p.toString();
    history.replaceState(null, "", `${location.pathname}${location.search}#/${qs ? `?${qs}` : ""}`);
    render();
  };
  const matches = (i) => {
    if (filter.status && i.status !== filter.status) return false;
    if (filter.agent === "none" && i.assignee_agent_id) return false;
    if (filter.agent && filter.agent !== "none" && i.assignee_agent_id !== filter.agent) return false;
    const words = filter.q.toLowerCase().split(/\s+/).filter(Boolean);
    const hay = `${i.key || ""} ${i.title} ${i.description || ""}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  };

  const card = (i) => {
    const label = issueLabel(i);
    const t = i.latest_task;
    return h("article.card", {
      draggable: "true",
      dataset: { issueId: i.id, status: i.status, key: i.key || "" },
      "aria-label": label,
      ondragstart: (e) => { e.dataTransfer.setData("text/plain", i.id); e.dataTransfer.effectAllowed = "move"; },
    },
      h("div.card-top", {},
        i.key ? h("span.key", {}, i.key) : null,
        h("span.age", {}, timeAgo(i.created_at, true))),
      h("a.card-title", { href: `#/issues/${i.id}` }, i.title),
      h("div.card-meta", {},
        h("span.assignee", {}, i.assignee_agent_id ? agentName(i.assignee_agent_id) : "unassigned"),
        i.run_count ? h("span.runs", { title: `${i.run_count} run${i.run_count === 1 ? "" : "s"}` },
          `${i.run_count} run${i.run_count === 1 ? "" : "s"}`) : null,
        taskBadge(t),
        t && t.diffstat ? diffCounts(t.diffstat) : null,
        prBadge(i.pr)),
      h("label.move", {}, h("span", { "aria-hidden": "true" }, "Move to "), statusSelect(i.status, {
        "aria-label": `Move ${label} to…`,
        dataset: { role: "move" },
        onchange: (e) => move(i.id, e.target.value),
      })),
    );
  };

  const move = async (id, status) => {
    const it = issues.find((i) => i.id === id);
    if (it) { it.status = status; render(); } // at once; the refresh confirms
    await attempt(() => patch(`/api/v1/issues/${id}`, { status }));
    refresh();
  };

  const empty = h("p.empty", { id: "board-empty", hidden: true });
  const render = () => {
    // Re-rendering replaces the cards: the control that had focus gets it back on the
    // same issue's new card, wherever it moved.
    const focused = document.activeElement;
    const focusCard = focused && focused.closest && focused.closest(".card");
    const focusId = focusCard && focusCard.dataset.issueId;
    const focusRole = focused && focused.dataset && focused.dataset.role;
    const focusIsTitle = focused && focused.classList && focused.classList.contains("card-title");
    const shown = issues.filter(matches);
    for (const s of STATUSES) {
      const here = shown.filter((i) => i.status === s);
      const all = issues.filter((i) => i.status === s).length;
      columns[s].count.textContent = here.length === all ? String(all) : `${here.length} of ${all}`;
      columns[s].list.replaceChildren(...here.map(card));
      columns[s].section.hidden = Boolean(filter.status) && filter.status !== s;
    }
    if (focusId) {
      const c = board.querySelector(`.card[data-issue-id="${CSS.escape(focusId)}"]`);
      const target = c && (focusIsTitle ? c.querySelector(".card-title")
        : focusRole ? c.querySelector(`[data-role="${CSS.escape(focusRole)}"]`) : null);
      if (target && document.activeElement !== target) target.focus();
    }
    clear.hidden = !active();
    if (!loaded) return;
    if (!issues.length) {
      empty.hidden = false;
      empty.textContent = "No issues yet: create one above.";
    } else if (!shown.length) {
      empty.hidden = false;
      empty.textContent = "No issues match these filters.";
    } else empty.hidden = true;
    summary.textContent = active() ? `${shown.length} of ${issues.length} issues match` : "";
  };

  const refresh = debounced(async () => {
    try {
      [issues] = await Promise.all([
        allIssues(state.workspace),
        loadAgents(),
      ]);
    } catch (e) { toast(e.message); return; }
    loaded = true;
    if (document.activeElement !== agentFilter) fillAgentFilter();
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
    const section = h("section.column", {
      dataset: { status: s },
      "aria-labelledby": `col-${s}`,
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
    }, h("h2", { id: `col-${s}` }, STATUS_LABEL[s], " ", count), list);
    columns[s] = { count, list, section };
    return section;
  }));

  mount(h("h1.visually-hidden", {}, "Board"),
    h("details.create", {}, h("summary", {}, "New issue"), h("div", { id: "new-issue" })),
    filters, summary, empty, board);
  loadAgents().then(() => {
    document.getElementById("new-issue")?.replaceChildren(newForm());
    fillAgentFilter();
  }).catch((e) => toast(e.message));
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

// A transcript message's label: what it is, in words (MessageKind of the protocol).
const MSG_LABEL = {
  text: "Agent", thinking: "Thinking", tool_use: "Tool call", tool_result: "Tool result",
  error: "Error", unknown: "Other",
};

/** A <pre> of a transcript; one tall enough to scroll gets keyboard focus. */
function msgPre(text) {
  const t = String(text);
  return h("pre", t.split("\n").length > 12 || t.length > 1200 ? { tabindex: "0" } : {}, t);
}

function messageNode(m) {
  const kind = m.type || "unknown";
  const body = [];
  let label = MSG_LABEL[kind] || kind;
  if (kind === "tool_use") {
    label = `Tool call · ${m.tool || "tool"}`;
    if (m.input !== undefined && m.input !== null) body.push(msgPre(JSON.stringify(m.input, null, 2)));
  } else if (kind === "tool_result") {
    if (m.tool) label = `Tool result · ${m.tool}`;
    body.push(msgPre(m.output ?? m.content ?? ""));
  } else {
    body.push(h("div.text", {}, m.content ?? m.output ?? ""));
  }
  return h(`li.msg.msg-${kind}`, { dataset: { seq: String(m.seq) } },
    h("span.kind", {}, label),
    m.created_at ? h("span.seq", {}, timeAgo(m.created_at, true))
      : h("span.seq", { title: `message ${m.seq} of the run` }, `#${m.seq}`),
    ...body);
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
      // Scrolls sideways: focusable, so the keyboard can scroll it too.
      h("div.diff-lines", { tabindex: "0", role: "region", "aria-label": `Diff of ${path}` }, rows));
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
  const log = h("ol.log", { dataset: { taskId }, tabindex: "0", "aria-label": `Transcript of run ${taskId.slice(0, 8)}` });
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

/** "Retry"/"Cancel"… of a run: the run's short id with its issue's key, for labels. */
const runLabel = (t) => `run ${t.id.slice(0, 8)}${t.issue_key ? ` of ${t.issue_key}` : ""}`;

/** Asks for confirmation in a modal <dialog> (focus moves into it, Escape closes it);
 *  resolves true when the user confirms. */
function confirmDialog({ title, text, confirm, keep }) {
  return new Promise((resolve) => {
    const dlg = h("dialog.confirm", { "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title" }, title),
      h("p", { id: "confirm-text" }, text),
      h("div.row", {},
        h("button", { type: "button", value: "keep", onclick: () => dlg.close("keep") }, keep),
        h("button.danger-solid", { type: "button", value: "ok", onclick: () => dlg.close("ok") }, confirm)));
    const opener = document.activeElement;
    dlg.addEventListener("close", () => {
      dlg.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(dlg.returnValue === "ok");
    });
    document.body.append(dlg);
    dlg.showModal();
    dlg.querySelector("button").focus();
  });
}

function actorName(a) {
  return a && a.name ? a.name : "someone";
}

function taskPanel(t, refreshIssue, log, diff, showTask) {
  const actions = [];
  if (["queued", "dispatched", "running"].includes(t.status)) {
    actions.push(h("button.danger", {
      "aria-label": `Cancel ${runLabel(t)}`,
      onclick: async () => {
        const ok = await confirmDialog({
          title: `Cancel ${runLabel(t)}?`,
          text: `${t.agent_name || agentName(t.agent_id)} stops working on it; what it did so far is not committed. You can retry it later.`,
          confirm: "Cancel run", keep: "Keep running",
        });
        if (!ok) return;
        await attempt(() => post(`/api/v1/tasks/${t.id}/cancel`));
        refreshIssue();
      },
    }, "Cancel"));
  }
  if (["failed", "cancelled"].includes(t.status) && !t.retry_task_id) {
    actions.push(h("button", {
      "aria-label": `Retry ${runLabel(t)}`,
      onclick: async () => {
        try {
          await post(`/api/v1/tasks/${t.id}/retry`);
        } catch (e) {
          if (e.code !== "already_retried") { toast(e.message); return; }
          await refreshIssue(true);
          toast("This run was already retried: here is the retry.", "info");
          // The 409 names the retry in `matches`.
          const m = e.data && Array.isArray(e.data.matches) && e.data.matches[0];
          showTask((m && m.id) || null, t.id);
          return;
        }
        refreshIssue();
      },
    }, "Retry"));
  }
  if (t.status === "failed" && t.failure_reason === "push_failed") {
    actions.push(h("button", {
      title: "Ask the daemon to push this task's branch again",
      "aria-label": `Retry the push of ${runLabel(t)}`,
      onclick: async () => { await attempt(() => post(`/api/v1/tasks/${t.id}/push`)); refreshIssue(); },
    }, "Retry push"));
  }
  const details = h("dl.facts", {},
    h("dt", {}, "Agent"), h("dd", {}, t.agent_name || agentName(t.agent_id)),
    h("dt", {}, "Runtime"), h("dd.ran-on", {}, t.runtime_id ? runtimeName(t.runtime_id)
      : "waiting for a runtime of the agent's pool with free capacity"),
    t.attempt > 1 ? [h("dt", {}, "Attempt"), h("dd.attempt", {}, String(t.attempt))] : null,
    h("dt", {}, "Queued"), h("dd", {}, timeAgo(t.created_at)),
    h("dt", {}, "Started"), h("dd", {}, t.started_at
      ? [timeAgo(t.started_at), " · ",
        t.completed_at ? `took ${elapsed(t.started_at, t.completed_at)}`
          : t.status === "running" ? runningFor(t, "running for ") : elapsed(t.started_at)]
      : "not yet"),
    t.completed_at ? [h("dt", {}, "Ended"), h("dd", {}, timeAgo(t.completed_at))] : null,
    t.cancelled_by ? [h("dt", {}, "Cancelled by"), h("dd.cancelled-by", {}, actorName(t.cancelled_by))] : null,
    t.parent_task_id ? [h("dt", {}, "Retry of"), h("dd.retried-by", {},
      h("code", {}, t.parent_task_id.slice(0, 8)), t.retried_by ? ` by ${actorName(t.retried_by)}` : "")] : null,
    t.retry_task_id ? [h("dt", {}, "Retried as"), h("dd", {}, h("code", {}, t.retry_task_id.slice(0, 8)))] : null,
    h("dt", {}, "Branch"), h("dd", {}, h("code", {}, t.branch_name || "—")),
    t.diffstat ? [h("dt", {}, "Changes"), h("dd", {}, diffstatLine(t.diffstat))] : null,
    t.pr ? [h("dt", {}, "Pull request"), h("dd", {}, prBadge(t.pr))] : null,
    h("dt", {}, "Work dir"), h("dd", {}, h("code", {}, t.work_dir || "—")),
    h("dt", {}, "Tokens"), h("dd", {}, usageLine(t.usage)),
    t.session_id ? [h("dt", {}, "Session"), h("dd", {}, h("code", {}, t.session_id))] : null,
  );
  const headId = `task-h-${t.id}`;
  const panel = h("section.task", { id: `task-${t.id}`, tabindex: "-1", "aria-labelledby": headId, dataset: { taskId: t.id, status: t.status } },
    h("header", {}, h("h3", { id: headId }, "Run ", h("code", {}, t.id.slice(0, 8))), taskBadge(t), ...actions),
    t.error ? h("p.error.task-error", {}, t.status === "failed" ? `Failed (${FAILURE_LABEL[t.failure_reason] || t.failure_reason || "error"}): ` : "", t.error) : null,
    details,
    diff,
    h("h4.log-head", {}, "Transcript"),
    log,
  );
  return panel;
}

const ACTOR_KIND = { member: "", admin: "admin", agent: "agent", system: "agentd", forge: "reviewer" };
const statusLabel = (s) => STATUS_LABEL[s] || s || "?";

/** One entry of the issue's activity: who, what, when (relative; absolute on hover). */
function activityNode(a) {
  const who = h("strong.actor", {}, actorName(a.actor));
  const kindTag = ACTOR_KIND[a.actor && a.actor.kind];
  const t = a.task;
  const run = t ? h("code", {}, t.id.slice(0, 8)) : null;
  let what;
  let extra = null;
  switch (a.kind) {
    case "created": what = ["created the issue", a.to_status ? ` in ${statusLabel(a.to_status)}` : ""]; break;
    case "comment":
      what = ["commented"];
      extra = a.comment ? markdown(a.comment.body) : null;
      break;
    case "status_changed": what = ["moved it from ", h("b", {}, statusLabel(a.from_status)), " to ", h("b", {}, statusLabel(a.to_status))]; break;
    case "assigned": what = a.detail ? ["assigned it to ", h("b", {}, a.detail)] : ["unassigned it"]; break;
    case "edited": what = [`edited the ${a.detail || "issue"}`]; break;
    case "task_queued": what = ["queued run ", run, t && t.agent_name ? ` for ${t.agent_name}` : ""]; break;
    case "task_started": what = ["started run ", run]; break;
    case "task_completed": what = ["completed run ", run]; break;
    case "task_failed":
      what = ["run ", run, " failed", t && t.failure_reason ? ` (${FAILURE_LABEL[t.failure_reason] || t.failure_reason})` : ""];
      extra = t && t.error ? h("pre.activity-error", {}, t.error) : null;
      break;
    case "task_cancelled": what = ["cancelled run ", run]; break;
    case "task_retried":
      what = ["retried", t && t.parent_task_id ? [" run ", h("code", {}, t.parent_task_id.slice(0, 8))] : "",
        " as run ", run];
      break;
    default: what = [a.detail || a.kind];
  }
  return h(`li.activity.act-${a.kind}${a.kind === "comment" ? ".comment" : ""}.by-${(a.actor && a.actor.kind) || "system"}`, { dataset: { kind: a.kind } },
    h("div.activity-head", {}, who, kindTag ? h("span.actor-kind", {}, ` (${kindTag})`) : null, " ", what,
      " · ", timeAgo(a.at)),
    extra);
}

/** The timeline of an older server that sends no activity: its comments. */
function commentsAsActivity(d) {
  return (d.comments || []).map((c) => ({
    at: c.created_at, kind: "comment", actor: { kind: c.author_type, name: c.author_name || c.author_type }, comment: c,
  }));
}

function issueView(id) {
  const logs = new Map(); // task id → taskLog, kept across refreshes (logs stream in place)
  const diffs = new Map(); // task id → its diff box, kept across refreshes (open or not)
  let ticker = null;
  let shown = false; // the page is built (after the first successful load)
  let disposed = false; // the user went elsewhere: a late answer must not mount this page
  let current = null; // the last IssueDetail
  let editing = false;
  // The edit fields are built once and kept while editing, so a live refresh never drops
  // what the user is typing.
  const titleInput = h("input.title-input", { id: "edit-title", required: true });
  const descInput = h("textarea", { id: "edit-description", rows: 8 });
  const heading = h("h1.issue-title", { id: "issue-title", tabindex: "-1" });
  const descView = h("div.description", {});
  const editBtn = h("button.edit-button", { type: "button", onclick: () => startEdit() }, "Edit");
  const viewBox = h("div.issue-view", {}, h("div.title-row", {}, heading, editBtn), descView);
  const status = statusSelect("backlog", { id: "issue-status" });
  const assigneeBox = h("span", {});
  const meta = h("p.muted.meta", {});
  const prBox = h("div.pr-box", {});
  const timeline = h("ol.timeline", { "aria-label": "Activity" });
  const tasks = h("div.tasks", {});
  const editHeading = h("h1.edit-heading", {}, "Edit issue");
  const cancelEdit = () => {
    editing = false;
    editForm.replaceWith(viewBox);
    editBtn.focus();
  };
  const editForm = h("form.edit", {
    "aria-label": "Edit issue",
    onsubmit: async (e) => {
      e.preventDefault();
      const ok = await attempt(() => patch(`/api/v1/issues/${id}`, { title: titleInput.value, description: descInput.value }));
      if (!ok) return;
      editing = false;
      editForm.replaceWith(viewBox);
      if (current) { current.issue = { ...current.issue, ...ok }; render(current); }
      editBtn.focus();
      refresh();
    },
    onkeydown: (e) => { if (e.key === "Escape") { e.preventDefault(); cancelEdit(); } },
  },
    editHeading,
    h("label.field", { for: "edit-title" }, "Title"), titleInput,
    h("label.field", { for: "edit-description" }, "Description (Markdown)"), descInput,
    h("div.row", {}, h("button.primary", { type: "submit" }, "Save"),
      h("button", { type: "button", onclick: cancelEdit }, "Cancel")));
  const startEdit = () => {
    if (!current) return;
    editing = true;
    editHeading.textContent = `Edit ${current.issue.key || "issue"}`;
    titleInput.value = current.issue.title;
    descInput.value = current.issue.description;
    viewBox.replaceWith(editForm);
    titleInput.focus();
  };
  const save = async (body) => {
    await attempt(() => patch(`/api/v1/issues/${id}`, body));
    refresh();
  };
  status.onchange = () => save({ status: status.value });
  const comment = h("textarea", { id: "new-comment", rows: 3, placeholder: "Markdown welcome", required: true });
  const commentForm = h("form.comment-form", {
    "aria-label": "Add a comment",
    onsubmit: async (e) => {
      e.preventDefault();
      const ok = await attempt(() => post(`/api/v1/issues/${id}/comments`, { body: comment.value }));
      if (ok) { comment.value = ""; refresh(); }
    },
  }, h("label.field", { for: "new-comment" }, "Comment"), comment, h("button.primary", { type: "submit" }, "Comment"));

  /** Brings a run's panel into view and focus (after an already_retried 409: the retry). */
  const showTask = (taskId, parentId) => {
    const target = taskId || (current && (current.tasks.find((x) => x.id === parentId) || {}).retry_task_id)
      || (current && (current.tasks.find((x) => x.parent_task_id === parentId) || {}).id);
    const el = target && document.getElementById(`task-${target}`);
    if (!el) return;
    el.classList.add("highlight");
    el.scrollIntoView({ block: "start" });
    el.focus();
  };

  let inflight = null;
  const load = async () => {
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
  };
  const refreshSoon = debounced(() => { inflight = load(); });
  // refresh(true) loads now and resolves once rendered; refresh() coalesces.
  const refresh = (now) => {
    if (now) { inflight = load(); return inflight; }
    refreshSoon();
    return Promise.resolve();
  };

  const render = (d) => {
    current = d;
    const i = d.issue;
    document.title = `${i.key ? `${i.key} ` : ""}${i.title} · agentd`;
    heading.replaceChildren(i.key ? h("span.key", {}, i.key) : null, i.key ? " " : null, i.title);
    descView.replaceChildren(i.description.trim() ? markdown(i.description)
      : h("p.muted", {}, "No description."));
    editBtn.setAttribute("aria-label", `Edit ${issueLabel(i)}`);
    if (document.activeElement !== status) status.value = i.status;
    status.setAttribute("aria-label", `Status of ${issueLabel(i)}`);
    const assigneeSel = assigneeBox.firstChild;
    if (!assigneeSel || document.activeElement !== assigneeSel) {
      const sel = agentSelect(i.assignee_agent_id || "", { id: "issue-assignee" });
      sel.onchange = () => save({ assignee_agent_id: sel.value });
      assigneeBox.replaceChildren(sel);
    }
    meta.replaceChildren("Created ", timeAgo(i.created_at), " · updated ", timeAgo(i.updated_at),
      i.run_count ? ` · ${i.run_count} run${i.run_count === 1 ? "" : "s"}` : "");
    prBox.replaceChildren(...(i.pr ? [h("span", {}, "Pull request"), prBadge(i.pr)] : []));
    const activity = d.activity && d.activity.length ? d.activity : commentsAsActivity(d);
    timeline.replaceChildren(...activity.map(activityNode));
    if (!activity.length) timeline.replaceChildren(h("li.muted", {}, "Nothing yet."));
    // Newest run first; each keeps its log element (it streams in place).
    // The newest run's diff opens by itself the first time it is shown.
    const newestWithDiff = [...d.tasks].reverse().find((t) => t.diffstat);
    const panels = [...d.tasks].reverse().map((t) => {
      if (!logs.has(t.id)) logs.set(t.id, taskLog(t.id));
      if (t.diffstat && !diffs.has(t.id)) diffs.set(t.id, taskDiff(t, t === newestWithDiff));
      return taskPanel(t, refresh, logs.get(t.id).log, diffs.get(t.id), showTask);
    });
    const focusedTask = document.activeElement && document.activeElement.closest && document.activeElement.closest("section.task");
    const focusedLabel = focusedTask && document.activeElement.getAttribute("aria-label");
    tasks.replaceChildren(...(panels.length ? panels
      : [h("p.muted", {}, i.assignee_agent_id ? "No run yet." : "No run yet: assign the issue to an agent.")]));
    if (focusedLabel) {
      const again = [...tasks.querySelectorAll("button[aria-label]")].find((b) => b.getAttribute("aria-label") === focusedLabel);
      if (again) again.focus();
    }
    if (!shown) {
      shown = true;
      mount(
        h("p", {}, h("a", { href: "#/" }, "← Board")),
        // Title and description first, then the properties (beside them from 900 px),
        // then the activity and the runs.
        h("article.issue", { "aria-labelledby": "issue-title" },
          h("div.issue-head", {}, editing ? editForm : viewBox),
          h("aside.issue-side", { "aria-label": "Issue details" },
            h("label", { for: "issue-status" }, "Status"), status,
            h("label", { for: "issue-assignee" }, "Assignee"), assigneeBox,
            prBox,
            meta),
          h("div.issue-body", {},
            h("h2", {}, "Activity"), timeline, commentForm,
            h("h2", {}, "Runs"), tasks)),
      );
    }
  };

  mount(h("p.muted", {}, "Loading issue…"));
  refresh(true);
  // Running tasks' elapsed time ticks without a refetch.
  ticker = tickRunning(document.getElementById("main"));
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
    h("table.table", {}, h("thead", {}, h("tr", {}, ["Runtime", "Provider", "Version", "Device", "Status", "Sandbox", "Last seen"].map((c) => h("th", {}, c)), h("th", {}, h("span.visually-hidden", {}, "Actions")))), body));
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
    const rt = h("select", { "aria-label": "Runtime", required: !(a && a.pool) }, runtimeOptions(a ? a.runtime_id : ""));
    // A pool instead of one runtime: any runtime of a provider, with labels.
    const poolProvider = h("input", { value: a && a.pool ? a.pool.provider || "" : "", placeholder: "Or a pool: any runtime of provider (e.g. claude)", "aria-label": "Pool provider" });
    const poolLabels = h("input", { value: a && a.pool ? (a.pool.labels || []).join(" ") : "", placeholder: "Pool labels (space-separated, e.g. gpu)", "aria-label": "Pool labels" });
    poolProvider.oninput = () => { rt.required = !poolProvider.value.trim(); };
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
        const provider = poolProvider.value.trim();
        if (provider) body.pool = { provider, labels: poolLabels.value.split(/\s+/).filter(Boolean) };
        else if (a && a.pool) body.pool = {}; // cleared: back to one runtime
        const ok = await attempt(() => (a ? patch(`/api/v1/agents/${a.id}`, body)
          : post(`/api/v1/workspaces/${state.workspace}/agents`, body)));
        if (ok) onDone(form);
      },
    }, name, rt, poolProvider, poolLabels, model, instr, env, h("div.row", {},
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
    list.replaceChildren(...state.agents.map((a) => {
      const box = h("section.agent", { dataset: { agentId: a.id } });
      const open = editing.get(a.id);
      if (open) {
        open.updateRuntimes();
        box.append(open);
        return box;
      }
      box.replaceChildren(...[
        h("header", {}, h("h2", {}, a.name), h("button", {
          onclick: () => {
            const done = () => { editing.delete(a.id); refresh(); };
            const form = agentForm(a, done, done);
            editing.set(a.id, form);
            box.replaceChildren(form);
            form.querySelector("input").focus();
          },
        }, "Edit")),
        h(a.problem ? "p.error.agent-problem" : "p.muted", {}, `on ${agentPlace(a, runtimes)}${a.model ? ` · model ${a.model}` : ""}`),
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
    h("table.table", {}, h("thead", {}, h("tr", {}, ["Name", "Kind", "Created", "Last used", "Expires", "Revoked"].map((c) => h("th", {}, c)), h("th", {}, h("span.visually-hidden", {}, "Actions")))), body));
  refresh();
  return {};
}

// ---------------------------------------------------------------- boot

// The skip link moves focus to the content without touching the hash (the router's).
document.getElementById("skip").addEventListener("click", (e) => {
  e.preventDefault();
  document.getElementById("main").focus();
});

if (/^#\/(signin|invite)\//.test(location.hash)) {
  // A sign-in link exchanges its code first; an invitation works signed in or not.
  if (state.token) route(); else resumeSession().then(() => route());
} else if (state.token) start();
else resumeSession().then((ok) => (ok ? start() : renderSignIn()));

// ---------------------------------------------------------------- members, invitations, audit

const ROLES = ["viewer", "member", "admin", "owner"];

/** #/members: the workspace's members (admins change roles and remove), and its pending
 *  invitations (admins make single-use links and revoke them). */
function membersView() {
  const ws = state.workspace;
  const members = h("tbody", {});
  const invites = h("tbody", {});
  const created = h("div", { id: "invite-created" });
  const refresh = async () => {
    let list;
    let pending;
    try {
      // The pending invitations first: only admins may see them, so a member is told
      // here (the server's words) that this page is not theirs.
      pending = await get(`/api/v1/workspaces/${ws}/invitations`);
      list = await get(`/api/v1/workspaces/${ws}/members`);
    } catch (e) {
      mount(h("h1", {}, "Members"), h("p.error", { id: "members-error", role: "alert" }, e.message));
      return;
    }
    members.replaceChildren(...list.map((m) => h("tr", { dataset: { email: m.email } },
      h("td", { dataset: { label: "Member" } }, h("strong", {}, m.name || m.email), h("div.muted", {}, m.email)),
      h("td", { dataset: { label: "Role" } }, h("select", {
        "aria-label": `Role of ${m.email}`,
        onchange: async (e) => {
          const ok = await attempt(() => api("PUT", `/api/v1/workspaces/${ws}/members/${m.user_id}`, { role: e.target.value }));
          if (ok) toast(`${m.email} is ${ok.role} now`, "info");
          refresh();
        },
      }, ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r)))),
      h("td", {}, h("button.danger", {
        "aria-label": `Remove ${m.email}`,
        onclick: async () => {
          if (!confirm(`Remove ${m.email}? Their sessions end and their tokens lose this workspace.`)) return;
          await attempt(() => api("DELETE", `/api/v1/workspaces/${ws}/members/${m.user_id}`));
          refresh();
        },
      }, "Remove")))));
    invites.replaceChildren(...pending.map((i) => h("tr", { dataset: { invitationId: i.id } },
      h("td", { dataset: { label: "Role" } }, i.role),
      h("td", { dataset: { label: "For" } }, i.email || "anyone with the link"),
      h("td", { dataset: { label: "Expires" } }, new Date(i.expires_at).toLocaleString()),
      h("td", {}, h("button.danger", {
        onclick: async () => {
          await attempt(() => api("DELETE", `/api/v1/invitations/${i.id}`));
          refresh();
        },
      }, "Revoke")))));
  };
  const role = h("select", { id: "invite-role", "aria-label": "Role of the invited person" },
    ROLES.map((r) => h("option", { value: r, selected: r === "member" ? "selected" : undefined }, r)));
  const email = h("input", { id: "invite-email", type: "email", placeholder: "Email (optional: limits who may use it)", "aria-label": "Email of the invited person" });
  const form = h("form.token-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { role: role.value };
      if (email.value.trim()) body.email = email.value.trim();
      const inv = await attempt(() => post(`/api/v1/workspaces/${ws}/invitations`, body));
      if (!inv) return;
      form.reset();
      created.replaceChildren(h("div.secret", { role: "status" },
        h("p", {}, `A single-use link for a ${inv.invitation.role}, good until ${new Date(inv.invitation.expires_at).toLocaleString()}. Copy it now: it is shown only once.`),
        h("code", { id: "invite-url" }, inv.url)));
      refresh();
    },
  }, role, email, h("button.primary", { type: "submit", id: "invite" }, "Make an invitation link"));
  mount(h("h1", {}, "Members"),
    h("table.table", { id: "members" }, h("thead", {}, h("tr", {}, ["Member", "Role"].map((c) => h("th", {}, c)), h("th", {}, h("span.visually-hidden", {}, "Actions")))), members),
    h("h2", {}, "Invitations"),
    form, created,
    h("table.table", { id: "invitations" }, h("thead", {}, h("tr", {}, ["Role", "For", "Expires"].map((c) => h("th", {}, c)), h("th", {}, h("span.visually-hidden", {}, "Actions")))), invites));
  refresh();
  return {};
}

/** #/audit: the workspace's audit log, newest first (workspace admins and owners). */
function auditView() {
  const body = h("tbody", {});
  const refresh = async () => {
    let page;
    try {
      page = await get(`/api/v1/audit?workspace_id=${encodeURIComponent(state.workspace)}&limit=200`);
    } catch (e) {
      mount(h("h1", {}, "Audit log"), h("p.error", { id: "audit-error", role: "alert" }, e.message));
      return;
    }
    body.replaceChildren(...page.entries.map((e) => h("tr", { dataset: { action: e.action } },
      h("td", { dataset: { label: "Time" } }, new Date(e.at).toLocaleString()),
      h("td", { dataset: { label: "Action" } }, h("code", {}, e.action)),
      h("td", { dataset: { label: "Actor" } }, e.actor_name || e.actor_kind),
      h("td", { dataset: { label: "Target" } }, e.target),
      h("td", { dataset: { label: "Source IP" } }, e.source_ip))));
  };
  mount(h("h1", {}, "Audit log"),
    h("p.muted", {}, "Sign-ins, tokens, members, agents' env and args, runtimes and forge connections of this workspace. Nobody can edit it."),
    h("table.table", { id: "audit" }, h("thead", {}, h("tr", {}, ["Time", "Action", "Actor", "Target", "Source IP"].map((c) => h("th", {}, c)))), body));
  refresh();
  return { onEvent: debounced(refresh, 1000) };
}

/** #/invite/TOKEN: join a workspace. Signed in: one click. Otherwise: make an account
 *  (email, name, password), which also signs this browser in. */
function inviteView(token) {
  if (state.view && state.view.dispose) state.view.dispose();
  state.view = null;
  const err = h("p.error", { id: "invite-error", role: "alert" });
  const done = async (accepted) => {
    history.replaceState(null, "", `${location.pathname}${location.search}#/`);
    if (accepted.session) {
      state.csrf = accepted.session.csrf_token;
      state.user = accepted.session.user;
      store.setItem(COOKIE_KEY, "1");
    }
    state.workspace = accepted.membership.workspace_id;
    store.setItem(WORKSPACE_KEY, state.workspace);
    toast(`You joined as ${accepted.membership.role}.`, "info");
    start();
  };
  const accept = async (body) => {
    try {
      await done(await api("POST", "/api/v1/invitations/accept", { token, ...body }, { auth: signedIn() }));
    } catch (e) {
      err.textContent = e.message;
    }
  };
  if (signedIn()) {
    mount(h("h1", {}, "Join a workspace"),
      h("p", {}, "You were invited to a workspace on this server."),
      h("button.primary", { id: "join", onclick: () => accept({}) }, "Join"), err);
    return;
  }
  const email = h("input", { id: "join-email", type: "email", autocomplete: "username", required: true });
  const name = h("input", { id: "join-name", autocomplete: "name" });
  const password = h("input", { id: "join-password", type: "password", autocomplete: "new-password", minlength: 8, required: true });
  mount(h("form.signin", {
    "aria-labelledby": "join-heading",
    onsubmit: (e) => { e.preventDefault(); accept({ email: email.value, name: name.value, password: password.value }); },
  },
    h("h1", { id: "join-heading" }, "Join a workspace"),
    h("p.muted", {}, "Make your account on this server: it joins the workspace you were invited to."),
    h("label", { for: "join-email" }, "Email"), email,
    h("label", { for: "join-name" }, "Name"), name,
    h("label", { for: "join-password" }, "Password (8 characters or more)"), password,
    h("button.primary", { type: "submit", id: "join" }, "Create account and join"),
    err));
  email.focus();
}
