// vivace web UI: plain ES modules, no build step, no dependencies. Every number on the page
// comes from the query API (the same one Grafana uses). Data is always inserted as text.

const API = document.querySelector('meta[name="vivace-api"]').content;
const main = document.getElementById('main');

// ---------------------------------------------------------------------------------------------
// helpers

/** Creates an element: h('div.cls', {attrs}, children...). */
function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined) el.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
  }
}

const tenantInput = document.getElementById('tenant');
// A link may name the tenant (`?tenant=`); it is then remembered like a typed one.
const linkTenant = new URLSearchParams(location.search).get('tenant');
if (linkTenant !== null) localStorage.setItem('vivace.tenant', linkTenant.trim());
tenantInput.value = localStorage.getItem('vivace.tenant') || '';
tenantInput.addEventListener('change', () => {
  localStorage.setItem('vivace.tenant', tenantInput.value.trim());
  tagCache.clear();
  render();
});

async function api(path, params) {
  const url = new URL(API + path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  const tenant = tenantInput.value.trim();
  if (tenant) headers['X-Scope-OrgID'] = tenant;
  const auth = sessionStorage.getItem('vivace.auth');
  if (auth) headers.Authorization = auth;
  const resp = await fetch(url, { headers });
  const text = await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, text.trim());
  return JSON.parse(text);
}

function nanos(v) {
  return typeof v === 'string' ? Number(BigInt(v) / 1000n) / 1e6 : Number(v || 0) / 1e9;
}
/** Seconds since epoch → local date and time. */
function fmtTime(sec) {
  const d = new Date(sec * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
function fmtDur(ms) {
  if (ms >= 60000) return `${(ms / 60000).toFixed(1)}m`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)}s`;
  if (ms >= 1) return `${ms.toFixed(ms >= 100 ? 0 : 1)}ms`;
  return `${(ms * 1000).toFixed(0)}µs`;
}
function fmtNum(v) {
  if (!isFinite(v)) return '–';
  if (v === 0) return '0';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

/** Base64 or hex ID → lower-case hex. */
function hexId(v) {
  if (!v) return '';
  if (/^[0-9a-fA-F]+$/.test(v) && (v.length === 16 || v.length === 32)) return v.toLowerCase();
  try {
    return Array.from(atob(v), (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
  } catch {
    return v;
  }
}

/** An OTLP JSON value → a JS value. */
function anyValue(v) {
  if (!v) return null;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v) return (v.arrayValue.values || []).map(anyValue);
  if ('kvlistValue' in v) return Object.fromEntries((v.kvlistValue.values || []).map((kv) => [kv.key, anyValue(kv.value)]));
  if ('bytesValue' in v) return hexId(v.bytesValue);
  return null;
}
const attrs = (list) => (list || []).map((kv) => [kv.key, anyValue(kv.value)]);
const show = (v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f',
  '#ff9da7', '#86bcb6', '#8cd17d', '#a0cbe8', '#d4a6c8', '#fabfd2', '#b6992d', '#499894'];
function colour(name) {
  let x = 0;
  for (const c of name) x = (x * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[x % PALETTE.length];
}

function errorBox(e, query) {
  const box = h('div.error', { role: 'alert' });
  const msg = e instanceof ApiError ? e.message : String(e.message || e);
  if (e instanceof ApiError && e.status === 401) {
    box.append(h('p', {}, msg), signIn());
    return box;
  }
  if (e instanceof ApiError && e.status === 403) {
    box.append(h('p', {}, msg), h('p.muted', {}, 'This credential may not read this tenant.'));
    return box;
  }
  box.append(h('p', {}, msg));
  const m = /line (\d+), col (\d+)/.exec(msg);
  if (m && query) {
    const line = query.split('\n')[Number(m[1]) - 1] ?? '';
    const col = Number(m[2]);
    box.append(h('pre.caret', {}, line + '\n' + ' '.repeat(Math.max(col - 1, 0)) + '^'));
  }
  return box;
}

/** The server wants a credential: a bearer token, or a user and password. Kept for this tab
 * only (sessionStorage) and sent on every API request. */
function signIn() {
  const done = (value) => {
    sessionStorage.setItem('vivace.auth', value);
    tagCache.clear();
    render();
  };
  const token = h('input', { type: 'password', placeholder: 'bearer token', autocomplete: 'off', 'aria-label': 'bearer token' });
  const user = h('input', { placeholder: 'user', autocomplete: 'username', 'aria-label': 'user' });
  const pass = h('input', { type: 'password', placeholder: 'password', autocomplete: 'current-password', 'aria-label': 'password' });
  const byToken = h('form.signin', {
    onsubmit: (ev) => { ev.preventDefault(); if (token.value.trim()) done(`Bearer ${token.value.trim()}`); },
  }, h('span.muted', {}, 'Sign in with a token '), token, h('button', { type: 'submit' }, 'Sign in'));
  const byUser = h('form.signin', {
    onsubmit: (ev) => { ev.preventDefault(); if (user.value) done(`Basic ${btoa(`${user.value}:${pass.value}`)}`); },
  }, h('span.muted', {}, 'or a user '), user, pass, h('button', { type: 'submit' }, 'Sign in'));
  return h('div', {}, byToken, byUser);
}

// ---------------------------------------------------------------------------------------------
// time ranges: `since=15m` (relative, the default) or `start`/`end` in unix seconds

const PRESETS = ['5m', '15m', '1h', '3h', '6h', '24h', '7d'];
function parseDur(s) {
  const m = /^(\d+(?:\.\d+)?)([smhd])$/.exec(s || '');
  if (!m) return 3600;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}
function rangeOf(params, fallback = '1h') {
  const now = Math.floor(Date.now() / 1000);
  if (params.get('start') && params.get('end')) {
    return { start: Number(params.get('start')), end: Number(params.get('end')), live: false };
  }
  const since = params.get('since') || fallback;
  return { start: now - parseDur(since), end: now + 1, since, live: true };
}
function rangePicker(params, onChange, fallback = '1h') {
  const cur = params.get('start') && params.get('end') ? 'custom' : params.get('since') || fallback;
  const sel = h('select', { 'aria-label': 'time range' },
    PRESETS.map((p) => h('option', { value: p, selected: p === cur }, `last ${p}`)),
    h('option', { value: 'custom', selected: cur === 'custom' }, 'custom'));
  const toLocal = (sec) => {
    const d = new Date(sec * 1000 - new Date().getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  };
  const r = rangeOf(params, fallback);
  const from = h('input', { type: 'datetime-local', 'aria-label': 'from', value: toLocal(r.start) });
  const to = h('input', { type: 'datetime-local', 'aria-label': 'to', value: toLocal(r.end) });
  const custom = h('span.custom', { hidden: cur !== 'custom' }, from, ' – ', to);
  const apply = () => {
    if (sel.value === 'custom') {
      params.delete('since');
      params.set('start', Math.floor(new Date(from.value).getTime() / 1000));
      params.set('end', Math.floor(new Date(to.value).getTime() / 1000));
    } else {
      params.delete('start');
      params.delete('end');
      params.set('since', sel.value);
    }
    onChange();
  };
  sel.addEventListener('change', () => {
    custom.hidden = sel.value !== 'custom';
    if (sel.value !== 'custom') apply();
  });
  from.addEventListener('change', apply);
  to.addEventListener('change', apply);
  return h('span.range', {}, sel, custom);
}

// ---------------------------------------------------------------------------------------------
// navigation

function navigate(url, replace = false) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-nav], a.nav');
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);
document.getElementById('goto').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = document.getElementById('goto-id').value.trim();
  if (id) navigate(`/trace/${encodeURIComponent(id)}`);
});

let timers = [];
function every(ms, fn) {
  timers.push(setInterval(fn, ms));
}

function render() {
  timers.forEach(clearInterval);
  timers = [];
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  let page = 'overview';
  main.replaceChildren();
  if (path.startsWith('/trace/')) {
    page = 'trace';
    tracePage(decodeURIComponent(path.slice(7)));
  } else if (path === '/search') {
    page = 'search';
    searchPage(params);
  } else if (path === '/graph') {
    page = 'graph';
    graphPage(params);
  } else {
    overviewPage(params);
  }
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.page === page);
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---------------------------------------------------------------------------------------------
// autocompletion of the TraceQL box from the tag APIs

const tagCache = new Map();
async function cached(key, fn) {
  if (!tagCache.has(key)) tagCache.set(key, fn().catch(() => null));
  return tagCache.get(key);
}
const SCOPES = ['resource.', 'span.', 'event.', 'link.', 'instrumentation.'];
const INTRINSICS = ['name', 'status', 'statusMessage', 'duration', 'kind', 'span:id', 'span:parentID',
  'trace:id', 'trace:duration', 'trace:rootName', 'trace:rootService', 'event:name', 'link:traceID',
  'instrumentation:name', 'rootName', 'rootServiceName', 'traceDuration'];
const KEYWORD_VALUES = {
  status: ['error', 'ok', 'unset'], 'span:status': ['error', 'ok', 'unset'],
  kind: ['server', 'client', 'internal', 'producer', 'consumer', 'unspecified'],
  'span:kind': ['server', 'client', 'internal', 'producer', 'consumer', 'unspecified'],
};

async function suggestions(text) {
  // A value after a comparison: `<attr> = "par`
  const v = /([A-Za-z_][\w.:-]*|\.[\w.-]+)\s*(=|!=|=~|!~)\s*("?)([^"\s}]*)$/.exec(text);
  if (v) {
    const [, attr, , quote, part] = v;
    if (KEYWORD_VALUES[attr]) {
      return KEYWORD_VALUES[attr].filter((x) => x.startsWith(part)).map((x) => ({ label: x, insert: x, replace: part.length + quote.length }));
    }
    const name = attr.startsWith('.') ? 'span' + attr : attr;
    const vals = await cached('v:' + name, () => api(`/api/v2/search/tag/${encodeURIComponent(name)}/values`, {}));
    if (!vals) return [];
    return (vals.tagValues || [])
      .filter((t) => String(t.value).startsWith(part))
      .slice(0, 50)
      .map((t) => {
        const str = t.type === 'string';
        return { label: String(t.value), insert: str ? `"${t.value}"` : String(t.value), replace: part.length + quote.length, detail: t.type };
      });
  }
  const m = /([A-Za-z_.:][\w.:-]*)$/.exec(text);
  if (!m) return [];
  const word = m[1];
  const scopes = await cached('tags', () => api('/api/v2/search/tags', {}));
  const names = {};
  for (const sc of (scopes && scopes.scopes) || []) names[sc.name] = sc.tags || [];
  const out = [];
  const dot = word.indexOf('.');
  if (word.startsWith('.')) {
    const part = word.slice(1);
    for (const n of new Set([...(names.span || []), ...(names.resource || [])])) {
      if (n.startsWith(part)) out.push({ label: '.' + n, insert: '.' + n, replace: word.length });
    }
  } else if (dot > 0) {
    const scope = word.slice(0, dot);
    const part = word.slice(dot + 1);
    for (const n of names[scope] || []) {
      if (n.startsWith(part)) out.push({ label: `${scope}.${n}`, insert: `${scope}.${n}`, replace: word.length });
    }
  } else {
    for (const sc of SCOPES) if (sc.startsWith(word)) out.push({ label: sc, insert: sc, replace: word.length, detail: 'scope' });
    for (const i of INTRINSICS) if (i.startsWith(word)) out.push({ label: i, insert: i, replace: word.length, detail: 'intrinsic' });
  }
  out.sort((a, b) => a.label.localeCompare(b.label));
  return out.slice(0, 50);
}

/** A TraceQL input with a suggestion list; `onRun` when Enter is pressed with no list open. */
function queryBox(value, onRun, placeholder) {
  const input = h('input.query', {
    value, placeholder, spellcheck: 'false', autocomplete: 'off', 'aria-label': 'TraceQL query',
    role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false', 'aria-controls': 'suggest',
  });
  const list = h('ul.suggest', { id: 'suggest', role: 'listbox', hidden: true });
  let items = [];
  let sel = 0;
  let seq = 0;
  const close = () => {
    list.hidden = true;
    items = [];
    input.setAttribute('aria-expanded', 'false');
  };
  const draw = () => {
    list.replaceChildren(...items.map((it, i) => h('li', {
      role: 'option', 'aria-selected': i === sel ? 'true' : 'false', class: i === sel ? 'sel' : '',
      onmousedown: (ev) => { ev.preventDefault(); sel = i; accept(); },
    }, it.label, it.detail ? h('span.detail', {}, it.detail) : null)));
    list.hidden = items.length === 0;
    input.setAttribute('aria-expanded', String(!list.hidden));
  };
  const accept = () => {
    const it = items[sel];
    if (!it) return;
    const pos = input.selectionStart;
    const before = input.value.slice(0, pos - it.replace);
    input.value = before + it.insert + input.value.slice(pos);
    const caret = before.length + it.insert.length;
    input.setSelectionRange(caret, caret);
    close();
    input.focus();
  };
  const update = async () => {
    const mine = ++seq;
    const got = await suggestions(input.value.slice(0, input.selectionStart));
    if (mine !== seq || document.activeElement !== input) return;
    items = got;
    sel = 0;
    draw();
  };
  input.addEventListener('input', update);
  input.addEventListener('blur', () => setTimeout(close, 100));
  input.addEventListener('keydown', (ev) => {
    if (!list.hidden && items.length) {
      if (ev.key === 'ArrowDown') { sel = (sel + 1) % items.length; draw(); ev.preventDefault(); return; }
      if (ev.key === 'ArrowUp') { sel = (sel + items.length - 1) % items.length; draw(); ev.preventDefault(); return; }
      if (ev.key === 'Tab' || ev.key === 'Enter') { accept(); ev.preventDefault(); return; }
      if (ev.key === 'Escape') { close(); ev.preventDefault(); return; }
    }
    if (ev.key === 'Enter') { ev.preventDefault(); onRun(input.value); }
    if (ev.key === ' ' && ev.ctrlKey) { ev.preventDefault(); update(); }
  });
  return { el: h('div.querybox', {}, input, list), input };
}

// ---------------------------------------------------------------------------------------------
// search

function searchPage(params) {
  const q = params.get('q') ?? '{ }';
  const run = (text) => {
    params.set('q', text);
    navigate('/search?' + params.toString());
  };
  const box = queryBox(q, run, '{ resource.service.name = "api" && status = error }');
  const live = h('input', { type: 'checkbox', id: 'live' });
  const out = h('div.results', { 'aria-live': 'polite' });
  main.append(
    h('h1', {}, 'Search'),
    h('div.toolbar', {},
      box.el,
      rangePicker(params, () => navigate('/search?' + params.toString())),
      h('button', { onclick: () => run(box.input.value) }, 'Run'),
      h('label.inline', {}, live, ' live'),
      h('a.small', { href: '/graph?q=' + encodeURIComponent(`${q} | rate()`), 'data-nav': true }, 'rate of these spans →'),
    ),
    out,
  );
  const load = async () => {
    const r = rangeOf(params);
    try {
      const started = performance.now();
      const res = await api('/api/search', { q, start: r.start, end: r.end, limit: params.get('limit') || 50, spss: 5 });
      out.replaceChildren(resultsTable(res, performance.now() - started));
    } catch (e) {
      out.replaceChildren(errorBox(e, q));
    }
  };
  live.addEventListener('change', () => {
    timers.forEach(clearInterval);
    timers = [];
    if (live.checked) every(5000, load);
  });
  load();
  box.input.focus();
}

function resultsTable(res, ms) {
  const traces = res.traces || [];
  const rows = traces.map((t) => {
    const sets = t.spanSets || (t.spanSet ? [t.spanSet] : []);
    const matched = sets.reduce((n, s) => n + (s.matched || 0), 0);
    const stats = Object.values(t.serviceStats || {});
    const spans = stats.reduce((n, s) => n + (s.spanCount || 0), 0);
    const errors = stats.reduce((n, s) => n + (s.errorCount || 0), 0);
    const id = t.traceID;
    return h('tr', {},
      h('td.mono', {}, h('a', { href: `/trace/${id}`, 'data-nav': true }, id)),
      h('td', {}, h('span.dot', { style: { background: colour(t.rootServiceName || '') } }), t.rootServiceName || '<root span not yet received>'),
      h('td', {}, t.rootTraceName || ''),
      h('td.mono', {}, fmtTime(nanos(t.startTimeUnixNano))),
      h('td.num', {}, fmtDur(t.durationMs || 0)),
      h('td.num', {}, spans || ''),
      h('td.num', {}, errors ? h('span.err', {}, errors) : ''),
      h('td.num', {}, matched));
  });
  const m = res.metrics || {};
  return h('div', {},
    h('p.muted', {}, `${traces.length} traces · ${fmtDur(ms)} · ${m.inspectedSpans || 0} spans inspected in ${m.completedJobs || 0} jobs`),
    traces.length ? h('table.grid', {},
      h('thead', {}, h('tr', {}, ['Trace ID', 'Root service', 'Root name', 'Start', 'Duration', 'Spans', 'Errors', 'Matched'].map((c) => h('th', {}, c)))),
      h('tbody', {}, rows)) : h('p', {}, 'No traces match.'));
}

// ---------------------------------------------------------------------------------------------
// trace view

function flattenTrace(trace) {
  const spans = [];
  for (const rs of trace.resourceSpans || trace.batches || []) {
    const resource = attrs(rs.resource && rs.resource.attributes);
    const service = (resource.find(([k]) => k === 'service.name') || [, ''])[1];
    for (const ss of rs.scopeSpans || rs.instrumentationLibrarySpans || []) {
      const scope = ss.scope || ss.instrumentationLibrary || {};
      for (const sp of ss.spans || []) {
        const start = nanos(sp.startTimeUnixNano);
        const end = Math.max(nanos(sp.endTimeUnixNano), start);
        const status = sp.status || {};
        spans.push({
          id: hexId(sp.spanId), parent: hexId(sp.parentSpanId), name: sp.name || '', service,
          kind: (sp.kind || 'SPAN_KIND_UNSPECIFIED').replace('SPAN_KIND_', '').toLowerCase(),
          start, end, error: status.code === 'STATUS_CODE_ERROR' || status.code === 2,
          statusCode: String(status.code || 'STATUS_CODE_UNSET').replace('STATUS_CODE_', '').toLowerCase(),
          statusMessage: status.message || '', attributes: attrs(sp.attributes), resource,
          scope: { name: scope.name || '', version: scope.version || '', attributes: attrs(scope.attributes) },
          events: (sp.events || []).map((e) => ({ name: e.name, t: nanos(e.timeUnixNano) - start, attributes: attrs(e.attributes) })),
          links: (sp.links || []).map((l) => ({ traceId: hexId(l.traceId), spanId: hexId(l.spanId), attributes: attrs(l.attributes) })),
          children: [],
        });
      }
    }
  }
  const byId = new Map(spans.map((s) => [s.id, s]));
  const roots = [];
  for (const s of spans) {
    const p = s.parent && !/^0*$/.test(s.parent) ? byId.get(s.parent) : undefined;
    if (p && p !== s) p.children.push(s);
    else roots.push(s);
  }
  const byStart = (a, b) => a.start - b.start;
  roots.sort(byStart);
  const order = [];
  const seen = new Set();
  const walk = (s, depth) => {
    if (seen.has(s)) return;
    seen.add(s);
    s.depth = depth;
    order.push(s);
    s.children.sort(byStart);
    s.children.forEach((c) => walk(c, depth + 1));
  };
  roots.forEach((r) => walk(r, 0));
  spans.filter((s) => !seen.has(s)).forEach((s) => walk(s, 0));
  return { spans: order, roots };
}

/** The critical path: from each root, the last-finishing child before the current time bound,
 * recursively (the chain of work the trace's end waited on). */
function criticalPath(roots) {
  const on = new Set();
  const visit = (span, bound) => {
    on.add(span);
    let t = Math.min(span.end, bound);
    const kids = [...span.children].sort((a, b) => b.end - a.end);
    for (const c of kids) {
      if (c.start >= t) continue;
      if (c.end <= span.start) continue;
      visit(c, t);
      t = c.start;
      if (t <= span.start) break;
    }
  };
  roots.forEach((r) => visit(r, r.end));
  return on;
}

async function tracePage(id) {
  main.append(h('h1', {}, 'Trace ', h('span.mono', {}, id)));
  const body = h('div', {}, h('p.muted', {}, 'Loading…'));
  main.append(body);
  let res;
  try {
    res = await api(`/api/v2/traces/${encodeURIComponent(id)}`);
  } catch (e) {
    body.replaceChildren(e instanceof ApiError && e.status === 404 ? h('div.error', { role: 'alert' }, `Trace ${id} was not found.`) : errorBox(e));
    return;
  }
  const { spans, roots } = flattenTrace(res.trace || res);
  if (!spans.length) {
    body.replaceChildren(h('div.error', { role: 'alert' }, `Trace ${id} was not found.`));
    return;
  }
  const t0 = Math.min(...spans.map((s) => s.start));
  const t1 = Math.max(...spans.map((s) => s.end));
  const total = Math.max(t1 - t0, 1e-9);
  const services = [...new Set(spans.map((s) => s.service))].sort();
  const errors = spans.filter((s) => s.error).length;
  const critical = criticalPath(roots);
  const root = roots[0];

  const collapsed = new Set();
  const details = h('aside.details', { 'aria-label': 'span details' }, h('p.muted', {}, 'Select a span to see its details.'));
  const rows = h('div.waterfall', { role: 'tree', 'aria-label': 'spans' });
  const find = h('input', { type: 'search', placeholder: 'find in trace (name, service, attribute)', 'aria-label': 'find in trace' });
  const found = h('span.muted', {});
  const showCp = h('input', { type: 'checkbox', id: 'cp', checked: true });
  let selected = null;

  const ticks = h('div.ticks', {}, [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { style: { left: `${f * 100}%` } }, fmtDur(f * total * 1000))));
  const rowOf = new Map();
  for (const sp of spans) {
    const left = ((sp.start - t0) / total) * 100;
    const width = Math.max(((sp.end - sp.start) / total) * 100, 0.2);
    const toggle = h('button.toggle', {
      'aria-label': 'collapse', tabindex: -1, hidden: sp.children.length === 0,
      onclick: (ev) => { ev.stopPropagation(); flip(sp); },
    }, '▾');
    const row = h('div.row', {
      role: 'treeitem', tabindex: 0, 'aria-level': sp.depth + 1, 'data-span': sp.id,
      'aria-expanded': sp.children.length ? 'true' : undefined,
      class: ['row', sp.error ? 'failed' : '', critical.has(sp) ? 'critical' : ''].join(' '),
      onclick: () => select(sp),
      onkeydown: (ev) => keys(ev, sp),
    },
    h('div.label', { style: { paddingLeft: `${sp.depth * 14 + 4}px` } },
      toggle,
      h('span.dot', { style: { background: colour(sp.service) } }),
      h('span.svc', {}, sp.service), ' ',
      h('span.name', {}, sp.name),
      sp.error ? h('span.err', { title: sp.statusMessage || 'error' }, ' ⚠') : ''),
    h('div.timeline', {},
      h('div.bar', { style: { left: `${left}%`, width: `${width}%`, background: colour(sp.service) } }),
      h('span.dur', { style: { left: `${Math.min(left + width, 92)}%` } }, fmtDur((sp.end - sp.start) * 1000))));
    sp.toggle = toggle;
    rowOf.set(sp, row);
    rows.append(row);
  }

  const visible = () => spans.filter((s) => !rowOf.get(s).hidden);
  function flip(sp) {
    if (collapsed.has(sp)) collapsed.delete(sp);
    else collapsed.add(sp);
    sp.toggle.textContent = collapsed.has(sp) ? '▸' : '▾';
    rowOf.get(sp).setAttribute('aria-expanded', String(!collapsed.has(sp)));
    const hide = (s, hidden) => s.children.forEach((c) => {
      rowOf.get(c).hidden = hidden;
      hide(c, hidden || collapsed.has(c));
    });
    hide(sp, collapsed.has(sp));
  }
  function keys(ev, sp) {
    const vis = visible();
    const i = vis.indexOf(sp);
    if (ev.key === 'ArrowDown' && vis[i + 1]) { rowOf.get(vis[i + 1]).focus(); ev.preventDefault(); }
    else if (ev.key === 'ArrowUp' && vis[i - 1]) { rowOf.get(vis[i - 1]).focus(); ev.preventDefault(); }
    else if (ev.key === 'ArrowLeft' && sp.children.length && !collapsed.has(sp)) flip(sp);
    else if (ev.key === 'ArrowRight' && collapsed.has(sp)) flip(sp);
    else if (ev.key === 'Enter' || ev.key === ' ') { select(sp); ev.preventDefault(); }
  }
  function select(sp) {
    if (selected) rowOf.get(selected).classList.remove('selected');
    selected = sp;
    rowOf.get(sp).classList.add('selected');
    details.replaceChildren(spanDetails(sp, t0));
  }
  const applyFind = () => {
    const needle = find.value.trim().toLowerCase();
    let n = 0;
    for (const sp of spans) {
      const hay = [sp.name, sp.service, sp.id, ...sp.attributes.flat().map(show)].join(' ').toLowerCase();
      const hit = needle && hay.includes(needle);
      if (hit) n++;
      rowOf.get(sp).classList.toggle('hit', !!hit);
      rowOf.get(sp).classList.toggle('dim', !!needle && !hit);
    }
    found.textContent = needle ? `${n} of ${spans.length} spans` : '';
  };
  find.addEventListener('input', applyFind);
  find.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter') return;
    const hits = spans.filter((s) => rowOf.get(s).classList.contains('hit'));
    if (!hits.length) return;
    const next = hits.find((s) => selected && spans.indexOf(s) > spans.indexOf(selected)) || hits[0];
    select(next);
    rowOf.get(next).scrollIntoView({ block: 'nearest' });
  });
  showCp.addEventListener('change', () => rows.classList.toggle('no-cp', !showCp.checked));

  body.replaceChildren(
    h('dl.summary', {},
      h('dt', {}, 'Root'), h('dd', {}, `${root.service}: ${root.name}`),
      h('dt', {}, 'Start'), h('dd.mono', {}, fmtTime(t0)),
      h('dt', {}, 'Duration'), h('dd', {}, fmtDur(total * 1000)),
      h('dt', {}, 'Spans'), h('dd', {}, spans.length),
      h('dt', {}, 'Services'), h('dd', {}, services.length),
      h('dt', {}, 'Errors'), h('dd', {}, errors ? h('span.err', {}, errors) : '0')),
    h('div.legend', {}, services.map((sv) => h('span', {}, h('span.dot', { style: { background: colour(sv) } }), sv))),
    h('div.toolbar', {}, find, found, h('label.inline', {}, showCp, ' highlight critical path')),
    h('div.traceview', {},
      h('div.waterfall-wrap', {}, h('div.row.head', {}, h('div.label', {}, 'Service and span'), h('div.timeline', {}, ticks)), rows),
      details));
}

function kvTable(list) {
  if (!list.length) return h('p.muted', {}, 'none');
  return h('table.kv', {}, h('tbody', {}, list.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, show(v))))));
}

function spanDetails(sp, t0) {
  return h('div', {},
    h('h2', {}, sp.name),
    h('dl.summary', {},
      h('dt', {}, 'Service'), h('dd', {}, sp.service),
      h('dt', {}, 'Kind'), h('dd', {}, sp.kind),
      h('dt', {}, 'Status'), h('dd', {}, sp.error ? h('span.err', {}, 'error') : sp.statusCode, sp.statusMessage ? `: ${sp.statusMessage}` : ''),
      h('dt', {}, 'Span ID'), h('dd.mono', {}, sp.id),
      h('dt', {}, 'Parent'), h('dd.mono', {}, sp.parent || '–'),
      h('dt', {}, 'Start'), h('dd', {}, `+${fmtDur((sp.start - t0) * 1000)}`),
      h('dt', {}, 'Duration'), h('dd', {}, fmtDur((sp.end - sp.start) * 1000))),
    h('h3', {}, 'Span attributes'), kvTable(sp.attributes),
    h('h3', {}, 'Resource attributes'), kvTable(sp.resource),
    h('h3', {}, 'Instrumentation scope'),
    kvTable([['name', sp.scope.name], ['version', sp.scope.version], ...sp.scope.attributes].filter(([, v]) => v !== '')),
    h('h3', {}, `Events (${sp.events.length})`),
    sp.events.length ? h('ul.events', {}, sp.events.map((e) => h('li', {}, h('strong', {}, e.name), ` at +${fmtDur(e.t * 1000)}`, e.attributes.length ? kvTable(e.attributes) : ''))) : h('p.muted', {}, 'none'),
    h('h3', {}, `Links (${sp.links.length})`),
    sp.links.length ? h('ul.events', {}, sp.links.map((l) => h('li', {}, h('a.mono', { href: `/trace/${l.traceId}`, 'data-nav': true }, l.traceId), ` span ${l.spanId}`, l.attributes.length ? kvTable(l.attributes) : ''))) : h('p.muted', {}, 'none'));
}

// ---------------------------------------------------------------------------------------------
// metrics charts

function labelsOf(series) {
  return Object.fromEntries((series.labels || []).map((l) => [l.key, anyValue(l.value)]));
}
function seriesName(series) {
  if (series.promLabels) return series.promLabels;
  const l = labelsOf(series);
  return '{' + Object.entries(l).map(([k, v]) => `${k}="${v}"`).join(', ') + '}';
}

/** A line chart of a range answer, with exemplars linking to their traces. */
function lineChart(res, { width = 900, height = 260, range } = {}) {
  const series = (res.series || []).map((s) => ({
    name: seriesName(s),
    // JSON leaves out a zero value.
    points: (s.samples || []).map((p) => [Number(p.timestampMs) / 1000, Number(p.value ?? 0)]).filter(([, v]) => isFinite(v)),
    exemplars: (s.exemplars || []).map((e) => ({
      t: Number(e.timestampMs) / 1000, v: Number(e.value),
      trace: hexId((labelsOf(e)['trace:id']) || ''),
    })),
  }));
  const all = series.flatMap((s) => s.points);
  if (!all.length) return h('p.muted', {}, 'No data in this range.');
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, x1] = range ? [range.start, Math.min(range.end, Date.now() / 1000)] : [Math.min(...xs), Math.max(...xs)];
  const y1 = Math.max(...ys, 0) * 1.1 || 1;
  const pad = { l: 56, r: 12, t: 10, b: 24 };
  const X = (x) => pad.l + ((x - x0) / (x1 - x0 || 1)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - (y / y1) * (height - pad.t - pad.b);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': 'metrics chart' });
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    svg.append(s('line', { x1: pad.l, x2: width - pad.r, y1: Y(y), y2: Y(y), class: 'grid' }),
      s('text', { x: pad.l - 6, y: Y(y) + 4, 'text-anchor': 'end' }, fmtNum(y)));
  }
  for (let i = 0; i <= 4; i++) {
    const x = x0 + ((x1 - x0) * i) / 4;
    svg.append(s('text', { x: X(x), y: height - 6, 'text-anchor': 'middle' }, fmtTime(x).slice(11, 19)));
  }
  series.forEach((se) => {
    const c = colour(se.name);
    if (se.points.length === 1) {
      svg.append(s('circle', { cx: X(se.points[0][0]), cy: Y(se.points[0][1]), r: 3, fill: c }));
    }
    svg.append(s('polyline', { points: se.points.map(([x, y]) => `${X(x)},${Y(y)}`).join(' '), stroke: c, fill: 'none', 'stroke-width': 1.8 },
      s('title', {}, se.name)));
    for (const ex of se.exemplars) {
      if (!ex.trace) continue;
      // A rate's exemplar has no value of its own: draw it on the line.
      if (!isFinite(ex.v) && se.points.length) {
        ex.v = se.points.reduce((a, b) => (Math.abs(b[0] - ex.t) < Math.abs(a[0] - ex.t) ? b : a))[1];
      }
      if (!isFinite(ex.v)) continue;
      const a = s('a', { href: `/trace/${ex.trace}`, class: 'nav' },
        s('circle', { cx: X(Math.min(Math.max(ex.t, x0), x1)), cy: Y(Math.min(ex.v, y1)), r: 3.5, fill: c, class: 'exemplar' },
          s('title', {}, `exemplar: trace ${ex.trace}`)));
      svg.append(a);
    }
  });
  const legend = h('ul.legend-list', {}, series.map((se) => {
    const last = se.points.length ? se.points[se.points.length - 1][1] : NaN;
    return h('li', {}, h('span.dot', { style: { background: colour(se.name) } }), h('span.mono', {}, se.name), h('span.muted', {}, ` last ${fmtNum(last)}`));
  }));
  return h('div', {}, svg, legend);
}

function graphPage(params) {
  const q = params.get('q') ?? '{ } | rate() by (resource.service.name)';
  const run = (text) => {
    params.set('q', text);
    navigate('/graph?' + params.toString());
  };
  const box = queryBox(q, run, '{ } | rate() by (resource.service.name)');
  const step = h('input', { value: params.get('step') || '', placeholder: 'step (auto)', size: 8, 'aria-label': 'step' });
  step.addEventListener('change', () => { params.set('step', step.value.trim()); run(box.input.value); });
  const out = h('div.results', { 'aria-live': 'polite' });
  main.append(h('h1', {}, 'Metrics'),
    h('div.toolbar', {}, box.el, rangePicker(params, () => navigate('/graph?' + params.toString())), step,
      h('button', { onclick: () => run(box.input.value) }, 'Run')),
    out);
  const load = async () => {
    const r = rangeOf(params);
    try {
      const res = await api('/api/metrics/query_range', { q, start: r.start, end: r.end, step: params.get('step') });
      out.replaceChildren(lineChart(res, { range: r }), res.status === 'PARTIAL' ? h('p.error', {}, res.message || 'partial answer') : '');
    } catch (e) {
      out.replaceChildren(errorBox(e, q));
    }
  };
  load();
}

// ---------------------------------------------------------------------------------------------
// overview: RED per service and the service graph, from stored spans through the query engine

const ENTRY = '{ kind = server || kind = consumer }';
const ENTRY_ERR = '{ (kind = server || kind = consumer) && status = error }';

async function instantBy(q, r) {
  const res = await api('/api/metrics/query', { q, start: r.start, end: r.end });
  const out = new Map();
  for (const se of res.series || []) {
    const l = labelsOf(se);
    out.set(`${l['resource.service.name'] ?? ''}|${l.p ?? ''}`, Number(se.value));
  }
  return out;
}

function overviewPage(params) {
  const out = h('div', {}, h('p.muted', {}, 'Loading…'));
  main.append(h('h1', {}, 'Overview'),
    h('div.toolbar', {}, rangePicker(params, () => navigate('/?' + params.toString()), '15m'),
      h('span.muted', {}, 'entry spans (server and consumer) per service, from stored traces')),
    out);
  const load = async () => {
    const r = rangeOf(params, '15m');
    const secs = Math.max(r.end - r.start, 1);
    try {
      const [rate, errs, lat] = await Promise.all([
        instantBy(`${ENTRY} | count_over_time() by (resource.service.name)`, r),
        instantBy(`${ENTRY_ERR} | count_over_time() by (resource.service.name)`, r),
        instantBy(`${ENTRY} | quantile_over_time(duration, .5, .99) by (resource.service.name)`, r),
      ]);
      const names = [...new Set([...rate.keys()].map((k) => k.split('|')[0]))].sort();
      const table = h('table.grid', {},
        h('thead', {}, h('tr', {}, ['Service', 'Requests/s', 'Errors', 'Error %', 'p50', 'p99', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, names.map((n) => {
          const count = rate.get(`${n}|`) || 0;
          const e = errs.get(`${n}|`) || 0;
          const search = `/search?q=${encodeURIComponent(`{ resource.service.name = "${n}" }`)}`;
          const graph = `/graph?q=${encodeURIComponent(`{ resource.service.name = "${n}" && (kind = server || kind = consumer) } | quantile_over_time(duration, .5, .99)`)}`;
          return h('tr', {},
            h('td', {}, h('span.dot', { style: { background: colour(n) } }), h('a', { href: search, 'data-nav': true }, n || '(no service.name)')),
            h('td.num', {}, fmtNum(count / secs)),
            h('td.num', {}, e ? h('a.err', { href: `/search?q=${encodeURIComponent(`{ resource.service.name = "${n}" && status = error }`)}`, 'data-nav': true }, e) : '0'),
            h('td.num', {}, count ? `${((100 * e) / count).toFixed(1)}%` : '–'),
            h('td.num', {}, fmtDur((lat.get(`${n}|0.5`) || 0) * 1000)),
            h('td.num', {}, fmtDur((lat.get(`${n}|0.99`) || 0) * 1000)),
            h('td', {}, h('a.small', { href: graph, 'data-nav': true }, 'latency →')));
        })));
      const graph = h('div', {}, h('p.muted', {}, 'Computing the service graph…'));
      out.replaceChildren(
        names.length ? table : h('p', {}, 'No entry spans in this range. Send traces to :4317 (OTLP gRPC) or :4318 (OTLP HTTP).'),
        h('h2', {}, 'Service graph'), graph,
        h('h2', {}, 'Requests per service'),
        h('div', { id: 'rate-chart' }, h('p.muted', {}, 'Loading…')));
      api('/api/metrics/query_range', { q: `${ENTRY} | rate() by (resource.service.name)`, start: r.start, end: r.end })
        .then((res) => document.getElementById('rate-chart')?.replaceChildren(lineChart(res, { height: 200, range: r })))
        .catch((e) => document.getElementById('rate-chart')?.replaceChildren(errorBox(e)));
      graph.replaceChildren(await serviceGraph(r));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  };
  load();
}

/** Edges client service → server service: for each service, the server spans whose parent is one
 * of its client or producer spans, counted by the server's service (one instant query each). */
async function serviceGraph(r) {
  const vals = await api('/api/v2/search/tag/resource.service.name/values', { start: r.start, end: r.end });
  const services = (vals.tagValues || []).map((t) => String(t.value)).sort().slice(0, 40);
  const edges = [];
  await Promise.all(services.map(async (c) => {
    const lhs = `{ resource.service.name = ${JSON.stringify(c)} && (kind = client || kind = producer) }`;
    const [all, bad] = await Promise.all([
      instantBy(`${lhs} > { kind = server || kind = consumer } | count_over_time() by (resource.service.name)`, r),
      instantBy(`${lhs} > { (kind = server || kind = consumer) && status = error } | count_over_time() by (resource.service.name)`, r),
    ]);
    for (const [k, n] of all) {
      const server = k.split('|')[0];
      if (n > 0) edges.push({ client: c, server, n, errors: bad.get(k) || 0 });
    }
  }));
  if (!edges.length) return h('p.muted', {}, 'No client → server calls in this range.');
  const nodes = [...new Set(edges.flatMap((e) => [e.client, e.server]))].sort();
  // Layered layout: a node's column is its longest distance from a node nobody calls.
  const layer = new Map(nodes.map((n) => [n, 0]));
  for (let i = 0; i < nodes.length; i++) {
    for (const e of edges) {
      if (e.client !== e.server && layer.get(e.server) < layer.get(e.client) + 1 && layer.get(e.client) + 1 < nodes.length) {
        layer.set(e.server, layer.get(e.client) + 1);
      }
    }
  }
  const cols = Math.max(...layer.values()) + 1;
  const perCol = Array.from({ length: cols }, () => []);
  for (const n of nodes) perCol[layer.get(n)].push(n);
  const rowsMax = Math.max(...perCol.map((c) => c.length));
  const W = Math.max(cols * 220, 400);
  const H = Math.max(rowsMax * 70 + 20, 120);
  const pos = new Map();
  perCol.forEach((col, ci) => col.forEach((n, ri) => pos.set(n, {
    x: 90 + ci * ((W - 180) / Math.max(cols - 1, 1)),
    y: ((ri + 1) * H) / (col.length + 1),
  })));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'graph', role: 'img', 'aria-label': 'service graph' },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))));
  for (const e of edges) {
    const a = pos.get(e.client);
    const b = pos.get(e.server);
    const label = `${e.n} calls${e.errors ? `, ${e.errors} failed` : ''}`;
    if (e.client === e.server) {
      svg.append(s('path', { d: `M ${a.x - 10} ${a.y - 18} c -30 -40 50 -40 20 0`, class: e.errors ? 'edge bad' : 'edge', 'marker-end': 'url(#arrow)' }, s('title', {}, `${e.client} → ${e.server}: ${label}`)));
      continue;
    }
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const len = Math.hypot(dx, dy) || 1;
    const [ux, uy] = [dx / len, dy / len];
    svg.append(s('line', { x1: a.x + ux * 60, y1: a.y + uy * 20, x2: b.x - ux * 62, y2: b.y - uy * 22, class: e.errors ? 'edge bad' : 'edge', 'marker-end': 'url(#arrow)' },
      s('title', {}, `${e.client} → ${e.server}: ${label}`)),
    s('text', { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 6, 'text-anchor': 'middle', class: 'edge-label' }, label));
  }
  for (const n of nodes) {
    const p = pos.get(n);
    const link = s('a', { href: `/search?q=${encodeURIComponent(`{ resource.service.name = ${JSON.stringify(n)} }`)}`, class: 'nav' },
      s('rect', { x: p.x - 60, y: p.y - 18, width: 120, height: 36, rx: 8, class: 'node', stroke: colour(n) }),
      s('text', { x: p.x, y: p.y + 5, 'text-anchor': 'middle' }, n.length > 16 ? n.slice(0, 15) + '…' : n));
    svg.append(link);
  }
  return h('div', {}, svg, h('p.muted', {}, `${edges.length} edges between ${nodes.length} services`));
}

render();
