// The realtime test page (CONTRACT §8), built on the client library (§10): the library joins,
// rejoins with since, drops duplicates, resyncs and assembles presence; this page draws what
// it hears. The source list is a REST snapshot with the vault's events applied on top.
// User text only ever reaches the DOM through textContent / createElement.
import { connect } from '/assets/syncscript-client.js';
import { SourceList, messageOf } from '/assets/realtime-sources.js';

const api = window.syncscriptApi;
const vaultId = new URLSearchParams(window.location.search).get('vaultId') || '';
const LOG_LIMIT = 200;
// What each library status shows: [data-state, text].
const STATUS = {
  connecting: ['connecting', 'Connecting…'],
  reconnecting: ['reconnecting', 'Reconnecting…'],
  joined: ['connected', `Connected to vault-${vaultId}`],
  denied: ['denied', 'Access denied'],
  revoked: ['denied', 'Access denied'],
  'signed-out': ['signed-out', 'Signed out'],
};

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const el = {
  status: $('connection-status'),
  role: $('role'),
  user: $('current-user'),
  name: document.getElementById('vault-name'),
  signin: document.getElementById('signin-link'),
  addCard: document.getElementById('add-card'),
  addForm: document.getElementById('add-source'),
  addError: $('source-error'),
  presence: $('presence-list'),
  log: $('event-log'),
};

let me = null;
let role = null;
let vault = null;
const sources = new SourceList($('source-list'), document.getElementById('source-empty'), {
  update: (id, fields) => vault.updateSource(id, fields),
  remove: (id) => vault.deleteSource(id),
  fetch: async (id) => {
    const result = await api('GET', `/api/sources/${encodeURIComponent(id)}`);
    return result.ok ? result.data.source : null;
  },
});

function vaultPath(suffix) {
  return `/api/vaults/${encodeURIComponent(vaultId)}${suffix}`;
}

function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text;
}

function setRole(next) {
  if (typeof next !== 'string' || next === role) return;
  role = next;
  el.role.textContent = next;
  const writable = next === 'owner' || next === 'contributor';
  el.addCard.hidden = !writable;
  sources.setWritable(writable);
}

function showVaultName(name) {
  el.name.textContent = name;
  document.title = `${name} · SyncScript Vault`;
}

/** Denied, revoked or signed out: nothing of the vault stays on screen. */
function endView(status, reason) {
  const [state, text] = STATUS[status];
  setStatus(state, text);
  if (reason) el.status.title = reason;
  if (status === 'signed-out') {
    el.signin.href = `/login?next=${encodeURIComponent(window.location.pathname + window.location.search)}`;
    el.signin.hidden = false;
  }
  role = null;
  el.role.textContent = '–';
  el.addCard.hidden = true;
  sources.setWritable(false);
  sources.clear();
  renderPresence([]);
}

function logLine(type, payload, note) {
  const li = document.createElement('li');
  li.dataset.testid = 'event-log-entry';
  li.dataset.type = type;
  const parts = [];
  if (payload && payload.seq !== undefined) {
    li.dataset.seq = String(payload.seq);
    parts.push(`seq ${payload.seq}`);
  }
  const latency = payload ? Date.now() - Date.parse(payload.timestamp) : NaN;
  if (Number.isFinite(latency)) {
    li.dataset.latencyMs = String(latency);
    parts.push(`${latency} ms`);
  }
  if (note) parts.push(note);
  const time = document.createElement('span');
  time.className = 'muted';
  time.textContent = `${new Date().toLocaleTimeString()} `;
  const name = document.createElement('span');
  name.className = 'type';
  name.textContent = type;
  li.append(time, name, document.createTextNode(parts.length ? ` · ${parts.join(' · ')}` : ''));
  el.log.insertBefore(li, el.log.firstChild);
  while (el.log.children.length > LOG_LIMIT) el.log.lastChild.remove();
}

function renderPresence(users) {
  const sorted = [...users].sort((a, b) => String(a.userName).localeCompare(String(b.userName)));
  el.presence.replaceChildren(...sorted.map((user) => {
    const li = document.createElement('li');
    li.dataset.testid = 'presence-item';
    li.dataset.userId = user.userId;
    li.textContent = `${user.userName} `;
    const badge = document.createElement('span');
    badge.className = 'role';
    badge.textContent = `(${user.role})`;
    li.appendChild(badge);
    return li;
  }));
}

function onEvent(event) {
  logLine(event.type, event);
  const mine = event.member && me && event.member.userId === me.id;
  switch (event.type) {
    case 'source:created':
    case 'source:updated':
      sources.upsert(event.source);
      break;
    case 'source:deleted':
      sources.remove(event.sourceId);
      break;
    case 'member:added':
    case 'member:updated':
      if (mine) setRole(event.member.role);
      break;
    case 'vault:updated':
      if (event.vault && typeof event.vault.name === 'string') showVaultName(event.vault.name);
      break;
    default:
      break; // a removal or deletion that concerns this page arrives as the 'revoked' status
  }
}

function onStatus(status) {
  logLine(status === 'joined' ? 'vault:joined' : status, null, status === 'joined' ? `seq ${vault.seq}` : '');
  if (status === 'denied' || status === 'revoked' || status === 'signed-out') {
    endView(status, vault.reason);
    return;
  }
  setStatus(...STATUS[status]);
  if (status === 'joined') setRole(vault.role);
  else renderPresence([]); // who is online is unknown until the next snapshot
}

/** Reloads the sources over REST; resolves to the log's latestSeq read before them. */
async function loadSnapshot() {
  const log = await api('GET', vaultPath('/events?since=0&limit=1'));
  if (!log.ok) throw log;
  const latestSeq = Number(log.data.latestSeq) || 0;
  const all = [];
  let cursor = null;
  for (let page = 0; page < 100; page += 1) {
    const query = new URLSearchParams({ limit: '100' });
    if (cursor) query.set('cursor', cursor);
    const result = await api('GET', vaultPath(`/sources?${query}`));
    if (!result.ok) throw result;
    all.push(...(result.data.sources || []));
    cursor = result.data.nextCursor;
    if (!cursor) break;
  }
  sources.replace(all);
  return latestSeq;
}

function restMessage(result) {
  const err = result.data && result.data.error;
  return err ? messageOf(err) : `Request failed (HTTP ${result.status})`;
}

function loadFailed(result) {
  if (result && result.status === 401) return endView('signed-out');
  if (result && [400, 403, 404].includes(result.status)) return endView('denied', restMessage(result));
  setStatus('error', `Could not load the vault: ${result && result.status ? restMessage(result) : 'network error'}`);
}

el.addForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!vault) return;
  el.addError.textContent = '';
  const submit = $('source-submit');
  submit.disabled = true;
  try {
    const title = el.addForm.elements.title.value;
    const fileUrl = el.addForm.elements.fileUrl.value.trim();
    sources.upsert(await vault.createSource({ title, fileUrl }));
    el.addForm.reset();
  } catch (err) {
    el.addError.textContent = messageOf(err);
  } finally {
    submit.disabled = false;
  }
});

async function start() {
  if (!vaultId) {
    setStatus('error', 'No vault given: open this page from the vault list.');
    return;
  }
  const session = await api('GET', '/api/auth/session');
  if (session.status === 401) return endView('signed-out');
  if (session.ok && session.data && session.data.user) {
    me = session.data.user;
    el.user.textContent = `${me.name} <${me.email}>`;
  }
  const info = await api('GET', vaultPath(''));
  if (!info.ok) return loadFailed(info);
  if (info.data.vault && typeof info.data.vault.name === 'string') showVaultName(info.data.vault.name);
  setRole(info.data.role);
  const since = await loadSnapshot();

  const client = connect(window.location.origin, { socketOptions: { reconnectionDelay: 250, reconnectionDelayMax: 500 } });
  vault = client.vault(vaultId, {
    since,
    onResync: async (latestSeq) => {
      logLine('resync', null, `more missed than the server replays; reloading (latestSeq ${latestSeq})`);
      setStatus('joining', 'Resyncing…');
      await loadSnapshot();
    },
  });
  vault.on('event', onEvent);
  vault.on('status', onStatus);
  vault.on('presence', renderPresence);
}

start().catch((err) => {
  if (err && typeof err.status === 'number') loadFailed(err);
  else setStatus('error', 'Cannot reach the server. Reload to try again.');
});
