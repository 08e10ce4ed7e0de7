// The callback-store dashboard. It reads the JSON API with the key the user
// types in, kept in sessionStorage (this tab only, gone when it closes; never
// localStorage or a cookie), and follows the change feed by long polling with
// fetch: EventSource cannot send an Authorization header. Every API error is
// shown in the banner, never swallowed. Everything is built with DOM calls
// (textContent, never innerHTML), so no stored text can become markup.
'use strict';

const KEY_ITEM = 'callback-store.api-key';
// The API is where the page is: /ui's parent, since the router may be nested.
const BASE = location.pathname.replace(/\/ui\/?$/, '');
const STATUSES = ['scheduled', 'dispatching', 'dispatched', 'failed', 'cancelled'];
const HOUR = 3600 * 1000;
const WINDOW_HOURS = 24;
// Seconds a long poll waits on the server: under common proxies' idle limits.
const FEED_WAIT = 25;
const FEED_RETRY_MAX = 30000;
const MAX_CHANGES = 100;
const PAGE = 100; // the list API's largest page
const TIMELINE_CAP = 500;

const $ = (id) => document.getElementById(id);

// The API's error body {error, code}, with the HTTP status.
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The open session: its key, an AbortController that ends its requests
// (and so its feed) when the key is forgotten, and what is on screen.
let session = null;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== 'string') node[name] = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null);
  return pairs.length ? '?' + new URLSearchParams(pairs).toString() : '';
}

// One call of the API. Answers other than 2xx become an ApiError carrying
// the body's code and message; an answer that is not JSON is an error too.
async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + session.key, Accept: 'application/json' };
  const init = { method, headers, signal: session.abort.signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(BASE + path, init);
  const text = await response.text();
  let value;
  try {
    value = text ? JSON.parse(text) : null;
  } catch (e) {
    throw new ApiError(response.status, 'NOT_JSON', `${method} ${path} answered ${response.status} with no JSON`);
  }
  if (!response.ok) {
    const code = (value && value.code) || 'HTTP_' + response.status;
    throw new ApiError(response.status, code, (value && value.error) || response.statusText);
  }
  return value;
}

function showError(context, err) {
  if (session && session.abort.signal.aborted) return; // requests of a forgotten key
  const text = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err.message || err);
  $('error-text').textContent = `${context}: ${text}`;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error-text').textContent = '';
}

// A refused key ends the session and asks for another; other errors are shown
// where they happened. Answers true when the session ended.
function refused(err) {
  if (err instanceof ApiError && err.status === 401) {
    forget();
    showError('The API key was refused', err);
    return true;
  }
  return false;
}

// Times are shown in the browser's zone (named in the header).
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayHourFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const fullFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const fmtTime = (iso) => timeFormat.format(new Date(iso));
const fmtFull = (iso) => (iso ? fullFormat.format(new Date(iso)) : '—');

function badge(status) {
  return el('span', { class: 'badge ' + status, text: status });
}

// ---- key handling -------------------------------------------------------

function start(key) {
  session = { key, abort: new AbortController(), selected: null, refreshing: null, again: false, touched: new Set() };
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('forget').hidden = false;
  open(session);
}

function forget() {
  if (session) session.abort.abort();
  session = null;
  sessionStorage.removeItem(KEY_ITEM);
  $('dashboard').hidden = true;
  $('forget').hidden = true;
  $('org').hidden = true;
  $('feed-state').hidden = true;
  $('stats').replaceChildren();
  $('timeline').replaceChildren();
  $('detail').replaceChildren(el('p', { class: 'muted', text: 'Select a callback in the timeline or in the changes.' }));
  $('changes').replaceChildren(el('li', { class: 'muted empty', text: 'No change since the page opened.' }));
  $('login').hidden = false;
  $('key').value = '';
  $('key').focus();
}

async function open(s) {
  // An operator key reads every organization's stats and feed but no
  // callback route: it is turned away here with the reason, not left to
  // fail route by route.
  const stats = await fetchStats();
  if (!stats) return;
  if (!stats.organization_id) {
    forget();
    showError('This key cannot open the dashboard', new Error(
      "it is an operator key, for every organization; the dashboard shows one organization's queue: open it with a key of that organization"));
    return;
  }
  // The feed's position is taken (since=now) before the views are loaded:
  // a change committed in between is then followed, never missed.
  let cursor;
  try {
    cursor = (await api('GET', '/v1/events' + query({ since: 'now', wait: 0, limit: 1 }))).next_cursor;
  } catch (err) {
    if (!refused(err)) showError('Cannot read the change feed', err);
    return;
  }
  await refresh(s);
  if (session !== s) return;
  setFeedState('live'); // loaded, and following from here on
  follow(s, cursor);
}

// ---- the change feed ----------------------------------------------------

function setFeedState(state, title) {
  const node = $('feed-state');
  node.hidden = false;
  node.className = 'feed ' + state;
  node.textContent = state === 'live' ? 'live' : 'reconnecting…';
  node.title = title || '';
}

async function follow(s, cursor) {
  let retry = 1000;
  while (session === s) {
    try {
      const page = await api('GET', '/v1/events' + query({ since: cursor, limit: PAGE, wait: FEED_WAIT }));
      cursor = page.next_cursor; // always, even when no change came
      retry = 1000;
      setFeedState('live');
      if (page.changes.length) {
        page.changes.forEach(addChange);
        page.changes.forEach((change) => s.touched.add(change.callback_id));
        scheduleRefresh(s);
      }
    } catch (err) {
      if (s.abort.signal.aborted || refused(err)) return;
      setFeedState('retrying', err.message);
      showError('Live changes interrupted, retrying', err);
      await new Promise((resolve) => setTimeout(resolve, retry));
      retry = Math.min(retry * 2, FEED_RETRY_MAX);
    }
  }
}

function addChange(change) {
  const list = $('changes');
  list.querySelector('.empty')?.remove();
  const item = el('li', { class: 'change fresh', 'data-callback': change.callback_id, 'data-action': change.action },
    el('time', { datetime: change.at, text: fmtTime(change.at), title: fmtFull(change.at) }),
    el('span', { class: 'action', text: change.action.replace(/_/g, ' ') }),
    el('span', { class: 'move' }, change.from ? badge(change.from) : null, change.from ? ' → ' : null, badge(change.to)),
    el('button', { type: 'button', class: 'link', text: shortId(change.callback_id), title: change.callback_id,
      onclick: () => select(change.callback_id) }),
    change.detail ? el('span', { class: 'detail', text: describe(change) }) : null);
  list.prepend(item);
  while (list.children.length > MAX_CHANGES) list.lastElementChild.remove();
}

// A reschedule's detail is the time it had: shown as one.
function describe(change) {
  const previous = change.action === 'reschedule' ? Date.parse(change.detail) : NaN;
  return Number.isNaN(previous) ? change.detail : 'was ' + fullFormat.format(previous);
}

const shortId = (id) => id.slice(0, 3) + '…' + id.slice(-6);

// Changes come in bursts: the views are reloaded once per burst, and again
// if more came while they were loading. The selected callback is reloaded
// only when it changed, so that what is typed in its form is kept.
function scheduleRefresh(s) {
  if (s.refreshing) {
    s.again = true;
    return;
  }
  s.refreshing = setTimeout(async () => {
    const touched = s.touched;
    s.touched = new Set();
    await refresh(s, touched);
    s.refreshing = null;
    if (s.again) {
      s.again = false;
      scheduleRefresh(s);
    }
  }, 250);
}

// Every view; the selected callback too unless `touched` (the ids that
// changed) leaves it out.
async function refresh(s, touched) {
  const detail = s.selected && (!touched || touched.has(s.selected));
  await Promise.all([loadStats(s), loadTimeline(s), detail ? loadDetail(s, s.selected) : null]);
}

// ---- counts ---------------------------------------------------------------

// The counts, or null when they could not be read (the error is shown).
async function fetchStats() {
  try {
    return await api('GET', '/v1/stats');
  } catch (err) {
    if (!refused(err)) showError('Cannot read the counts', err);
    return null;
  }
}

async function loadStats(s) {
  const stats = await fetchStats();
  if (!stats || session !== s) return;
  $('org').textContent = stats.organization_id;
  $('org').hidden = false;
  const others = Object.keys(stats.counts).filter((status) => !STATUSES.includes(status));
  const card = (label, value, cls, note) =>
    el('div', { class: 'stat ' + cls, 'data-stat': label },
      el('span', { class: 'label', text: label }),
      el('strong', { class: 'value', text: String(value) }),
      note ? el('span', { class: 'note', text: note }) : null);
  $('stats').replaceChildren(
    ...STATUSES.concat(others).map((status) => card(status, stats.counts[status] ?? 0, status)),
    card('due', stats.due, 'due', stats.oldest_due_at ? 'oldest ' + fmtFull(stats.oldest_due_at) : 'none waiting'));
}

// ---- the timeline ---------------------------------------------------------

// Every page of a scheduled_asc query, up to TIMELINE_CAP callbacks.
async function listAll(params) {
  const callbacks = [];
  let cursor = null;
  do {
    const page = await api('GET', '/v1/callbacks' + query({ ...params, order: 'scheduled_asc', limit: PAGE, cursor }));
    callbacks.push(...page.callbacks);
    cursor = page.next_cursor;
  } while (cursor && callbacks.length < TIMELINE_CAP);
  return { callbacks, more: Boolean(cursor) };
}

async function loadTimeline(s) {
  const now = new Date();
  const end = new Date(now.getTime() + WINDOW_HOURS * HOUR);
  let due, coming;
  try {
    // Still scheduled but already due: what the dispatcher has yet to take.
    [due, coming] = await Promise.all([
      listAll({ status: 'scheduled', scheduled_before: now.toISOString() }),
      listAll({ scheduled_after: now.toISOString(), scheduled_before: end.toISOString() }),
    ]);
  } catch (err) {
    if (!refused(err)) showError('Cannot list the callbacks', err);
    return;
  }
  if (session !== s) return;
  $('timeline-range').textContent = `${dayHourFormat.format(now)} – ${dayHourFormat.format(end)}`;
  const rows = [];
  if (due.callbacks.length) {
    rows.push(hourRow('due now', 'overdue', due.callbacks, due.more));
  }
  // One row per hour of the window, empty ones too: the axis stays readable.
  const first = new Date(now);
  first.setMinutes(0, 0, 0);
  for (let h = 0; h <= WINDOW_HOURS; h++) {
    const from = first.getTime() + h * HOUR;
    const inHour = coming.callbacks.filter((c) => {
      const t = Date.parse(c.scheduled_at);
      return t >= from && t < from + HOUR;
    });
    // The day is named where the window starts and where it turns.
    const label = (h === 0 || new Date(from).getHours() === 0 ? dayHourFormat : timeFormat).format(from);
    rows.push(hourRow(label, inHour.length ? '' : 'empty', inHour, false));
  }
  if (coming.more) {
    rows.push(el('li', { class: 'muted', text: `Only the first ${TIMELINE_CAP} callbacks of the window are shown.` }));
  }
  $('timeline').replaceChildren(...rows);
}

function hourRow(label, cls, callbacks, more) {
  return el('li', { class: 'hour ' + cls },
    el('span', { class: 'hour-label', text: label }),
    el('div', { class: 'slots' },
      callbacks.map(card),
      more ? el('span', { class: 'muted', text: `and more (first ${TIMELINE_CAP} shown)` }) : null));
}

function card(callback) {
  const selected = session && session.selected === callback.id;
  return el('button', {
    type: 'button', class: `card ${callback.status}${selected ? ' selected' : ''}`,
    'data-id': callback.id, title: callback.id, onclick: () => select(callback.id),
  },
  el('time', { datetime: callback.scheduled_at, text: fmtTime(callback.scheduled_at) }),
  el('span', { class: 'number', text: callback.to_number }),
  badge(callback.status),
  callback.agent_id ? el('span', { class: 'muted', text: callback.agent_id }) : null,
  callback.reason ? el('span', { class: 'reason', text: callback.reason }) : null);
}

// ---- one callback ---------------------------------------------------------

function select(id) {
  if (!session) return;
  session.selected = id;
  for (const node of document.querySelectorAll('.card')) {
    node.classList.toggle('selected', node.dataset.id === id);
  }
  loadDetail(session, id);
}

async function loadDetail(s, id) {
  let callback, history;
  try {
    [callback, history] = await Promise.all([
      api('GET', `/v1/callbacks/${encodeURIComponent(id)}`),
      api('GET', `/v1/callbacks/${encodeURIComponent(id)}/events`),
    ]);
  } catch (err) {
    if (!refused(err)) showError(`Cannot read callback ${id}`, err);
    return;
  }
  if (session !== s || s.selected !== id) return; // another one was selected meanwhile
  renderDetail(callback, history.events);
}

function renderDetail(callback, events) {
  const field = (name, value) => (value === null || value === undefined || value === ''
    ? null : [el('dt', { text: name }), el('dd', { text: String(value) })]);
  const facts = el('dl', { class: 'facts' },
    field('to', callback.to_number),
    field('scheduled', fmtFull(callback.scheduled_at)),
    field('from', callback.from_number),
    field('agent', callback.agent_id),
    field('attempt', callback.attempt),
    field('reason', callback.reason),
    field('time zone', callback.timezone),
    field('expires', callback.expires_at && fmtFull(callback.expires_at)),
    field('failure', callback.failure_cause),
    field('session', callback.created_session_id),
    field('follows', callback.previous_callback_id));
  const history = el('table', { class: 'history' },
    el('thead', {}, el('tr', {}, ['when', 'action', 'status', 'detail'].map((h) => el('th', { text: h })))),
    el('tbody', {}, events.map((event) => el('tr', { 'data-action': event.action },
      el('td', { text: fmtFull(event.at) }),
      el('td', { text: event.action.replace(/_/g, ' ') }),
      el('td', {}, event.from ? badge(event.from) : null, event.from ? ' → ' : null, badge(event.to)),
      el('td', { text: event.detail ? describe(event) : '' })))));
  $('detail').replaceChildren(
    el('div', { class: 'detail-head' }, el('code', { text: callback.id }), badge(callback.status)),
    facts,
    actions(callback),
    el('h3', { text: 'History' }),
    history);
}

// The three actions of a scheduled callback. Other statuses get none: the
// API would answer INVALID_TRANSITION (and would be shown if it did).
function actions(callback) {
  if (callback.status !== 'scheduled') {
    return el('p', { class: 'muted', text: `No action: the callback is ${callback.status}.` });
  }
  const id = encodeURIComponent(callback.id);
  const reason = el('input', { type: 'text', id: 'cancel-reason', placeholder: 'reason (optional)', maxLength: 200 });
  const when = el('input', { type: 'datetime-local', id: 'reschedule-at', value: localInput(callback.scheduled_at) });
  return el('div', { class: 'actions' },
    el('div', { class: 'row' },
      reason,
      el('button', { type: 'button', id: 'cancel', class: 'danger', text: 'Cancel',
        onclick: () => act('Cancel', callback.id, () => api('POST', `/v1/callbacks/${id}/cancel`,
          reason.value.trim() ? { reason: reason.value.trim() } : {})) })),
    el('div', { class: 'row' },
      when,
      el('button', { type: 'button', id: 'reschedule', text: 'Reschedule',
        onclick: () => {
          const at = new Date(when.value);
          if (Number.isNaN(at.getTime())) {
            showError(`Reschedule ${callback.id}`, new Error('choose a date and time first'));
            return;
          }
          act('Reschedule', callback.id, () => api('POST', `/v1/callbacks/${id}/reschedule`, { scheduled_at: at.toISOString() }));
        } })),
    el('div', { class: 'row' },
      el('button', { type: 'button', id: 'dispatch', text: 'Dispatch now',
        onclick: () => act('Dispatch', callback.id, () => api('POST', `/v1/callbacks/${id}/dispatch`)) })));
}

// The value a datetime-local input takes for a time: local, to the minute.
function localInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// Runs an action; the views then follow from the change feed, which is what
// shows that the change committed, but the callback is redrawn at once.
async function act(label, id, call) {
  const s = session;
  for (const button of document.querySelectorAll('.actions button')) button.disabled = true;
  try {
    await call();
    clearError();
  } catch (err) {
    if (!refused(err)) showError(`${label} ${id}`, err);
  }
  if (session === s && s.selected === id) await loadDetail(s, id);
}

// ---- start ---------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('zone').textContent = 'times in ' + Intl.DateTimeFormat().resolvedOptions().timeZone;
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault(); // read here: the key never goes into a URL
    const key = $('key').value.trim();
    if (!key) return;
    clearError();
    sessionStorage.setItem(KEY_ITEM, key);
    start(key);
  });
  $('forget').addEventListener('click', () => {
    forget();
    clearError();
  });
  $('error-close').addEventListener('click', clearError);
  // The window moves with the clock, and callbacks fall due with no change
  // in the feed: the counts and the timeline are reloaded each minute.
  setInterval(() => {
    if (session) refresh(session, new Set());
  }, 60 * 1000);
  const key = sessionStorage.getItem(KEY_ITEM);
  if (key) start(key);
  else forget();
});
