// The realtime test page (CONTRACT §8).
//
// Invariants:
// - The source list is a snapshot loaded over REST plus the vault events applied on top.
//   `applied` is a contiguous watermark: every seq <= applied.upTo is reflected, and
//   `applied.above` holds seqs already applied past a gap. An event whose seq was applied
//   is dropped, so replays and live duplicates show nothing twice.
// - Every (re)join sends `since: applied.upTo`, so the server replays whatever was missed.
// - User text only ever reaches the DOM through textContent / createElement.
(function () {
  'use strict';

  const vaultId = new URLSearchParams(window.location.search).get('vaultId') || '';
  const LOG_LIMIT = 200;
  const GAP_WAIT_MS = 2000;
  const VAULT_EVENTS = [
    'source:created', 'source:updated', 'source:deleted',
    'member:added', 'member:updated', 'member:removed',
    'vault:updated', 'vault:deleted',
  ];

  const $ = function (testid) { return document.querySelector('[data-testid="' + testid + '"]'); };
  const el = {
    status: $('connection-status'),
    role: $('role'),
    user: $('current-user'),
    name: document.getElementById('vault-name'),
    signin: document.getElementById('signin-link'),
    addCard: document.getElementById('add-card'),
    addForm: document.getElementById('add-source'),
    addError: $('source-error'),
    list: $('source-list'),
    empty: document.getElementById('source-empty'),
    presence: $('presence-list'),
    log: $('event-log'),
  };

  const state = {
    me: null,
    role: null,
    socket: null,
    sources: new Map(), // id -> {source, order}
    items: new Map(), // id -> <li>
    deleted: new Set(), // ids deleted since the last snapshot, so a late update cannot revive one
    order: 0,
    applied: { upTo: 0, above: new Set() },
    joining: false,
    joined: false,
    everJoined: false,
    ended: false, // access denied or signed out: stop (re)joining
    reloading: null, // promise of a REST reload in progress
    buffered: [],
    presence: new Map(), // userId -> {userId, userName, role}
    // A snapshot may come in several packets (all but the last with `more`); diffs that
    // arrive from sending the join until the snapshot is whole wait, then apply on top of it.
    snapshot: null,
    presenceWaiting: true,
    pendingDiffs: [],
    gapTimer: null,
    joinRetry: 0, // ms before asking again after a busy server refused a join
  };

  // ---------- small helpers ----------

  function setStatus(kind, text) {
    el.status.dataset.state = kind;
    el.status.textContent = text;
  }

  function canWrite() {
    return state.role === 'owner' || state.role === 'contributor';
  }

  function sameId(a, b) {
    return typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase();
  }

  function safeHref(url) {
    try {
      const parsed = new URL(url);
      return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  const api = window.syncscriptApi;

  function messageOf(result) {
    const err = result.data && result.data.error;
    if (!err) return 'Request failed (HTTP ' + result.status + ')';
    if (Array.isArray(err.details) && err.details.length > 0 && err.details[0].message) {
      return err.message + ': ' + (err.details[0].field ? err.details[0].field + ' ' : '') + err.details[0].message;
    }
    return err.message || err.code || 'Request failed';
  }

  function vaultPath(suffix) {
    return '/api/vaults/' + encodeURIComponent(vaultId) + suffix;
  }

  // ---------- terminal states ----------

  function signedOut() {
    state.ended = true;
    setStatus('signed-out', 'Signed out');
    el.signin.href = '/login?next=' + encodeURIComponent(window.location.pathname + window.location.search);
    el.signin.hidden = false;
    clearVaultView();
    if (state.socket) state.socket.disconnect();
  }

  function accessDenied(reason) {
    state.ended = true;
    setStatus('denied', 'Access denied');
    if (reason) el.status.title = reason;
    clearVaultView();
    if (state.socket) state.socket.disconnect();
  }

  function clearVaultView() {
    state.sources.clear();
    state.role = null;
    el.role.textContent = '–';
    el.addCard.hidden = true;
    renderAll();
    state.presence.clear();
    renderPresence();
  }

  // ---------- sources ----------

  function sortKey(entry) {
    const t = Date.parse(entry.source.createdAt);
    return [Number.isFinite(t) ? t : 0, entry.order];
  }

  function newerThan(a, b) {
    const ka = sortKey(a);
    const kb = sortKey(b);
    return ka[0] !== kb[0] ? ka[0] > kb[0] : ka[1] > kb[1];
  }

  function buildItem(source) {
    const li = document.createElement('li');
    li.dataset.testid = 'source-item';
    li.dataset.sourceId = source.id;

    const main = document.createElement('div');
    main.className = 'source-main';
    const text = document.createElement('div');
    text.className = 'source-text';
    const title = document.createElement('div');
    title.className = 'source-title';
    title.dataset.testid = 'source-title';
    const link = document.createElement('a');
    link.className = 'source-url';
    link.dataset.testid = 'source-url';
    link.rel = 'noopener noreferrer';
    link.target = '_blank';
    text.append(title, link);
    main.appendChild(text);
    li.appendChild(main);

    if (canWrite()) {
      const actions = document.createElement('div');
      actions.className = 'source-actions';
      const edit = document.createElement('button');
      edit.type = 'button';
      edit.className = 'secondary small';
      edit.dataset.testid = 'source-edit';
      edit.textContent = 'Edit';
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'danger small';
      del.dataset.testid = 'source-delete';
      del.textContent = 'Delete';
      actions.append(edit, del);
      main.appendChild(actions);
      li.appendChild(buildEditForm(li, source.id));
      edit.addEventListener('click', function () { openEditor(li, source.id); });
      del.addEventListener('click', function () { deleteSource(li, source.id, del); });
    }
    const error = document.createElement('p');
    error.className = 'error';
    error.dataset.testid = 'source-item-error';
    error.hidden = true;
    li.appendChild(error);
    fillItem(li, source);
    return li;
  }

  function buildEditForm(li, id) {
    const form = document.createElement('form');
    form.className = 'row source-edit-form';
    form.noValidate = true;
    form.hidden = true;
    const titleLabel = document.createElement('label');
    titleLabel.textContent = 'Title';
    const title = document.createElement('input');
    title.name = 'title';
    title.maxLength = 300;
    title.dataset.testid = 'source-edit-title';
    titleLabel.appendChild(title);
    const urlLabel = document.createElement('label');
    urlLabel.textContent = 'URL';
    const url = document.createElement('input');
    url.name = 'fileUrl';
    url.type = 'url';
    url.maxLength = 2048;
    url.dataset.testid = 'source-edit-url';
    urlLabel.appendChild(url);
    const save = document.createElement('button');
    save.type = 'submit';
    save.dataset.testid = 'source-edit-save';
    save.textContent = 'Save';
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'secondary';
    cancel.dataset.testid = 'source-edit-cancel';
    cancel.textContent = 'Cancel';
    form.append(titleLabel, urlLabel, save, cancel);
    cancel.addEventListener('click', function () { form.hidden = true; });
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      saveEdit(li, id, form, save);
    });
    return form;
  }

  function fillItem(li, source) {
    li.querySelector('[data-testid="source-title"]').textContent = source.title;
    const link = li.querySelector('[data-testid="source-url"]');
    link.textContent = source.fileUrl;
    const href = safeHref(source.fileUrl);
    if (href) link.href = href; else link.removeAttribute('href');
    li.dataset.version = String(source.version);
  }

  function placeItem(id) {
    const entry = state.sources.get(id);
    let li = state.items.get(id);
    if (!li) {
      li = buildItem(entry.source);
      state.items.set(id, li);
    } else {
      fillItem(li, entry.source);
      if (li.parentNode === el.list) return;
    }
    let before = null;
    for (const child of el.list.children) {
      const other = state.sources.get(child.dataset.sourceId);
      if (other && newerThan(entry, other)) { before = child; break; }
    }
    el.list.insertBefore(li, before);
    el.empty.hidden = true;
  }

  function renderAll() {
    state.items.clear();
    const entries = Array.from(state.sources.entries());
    entries.sort(function (a, b) { return newerThan(a[1], b[1]) ? -1 : 1; });
    const lis = entries.map(function (pair) {
      const li = buildItem(pair[1].source);
      state.items.set(pair[0], li);
      return li;
    });
    el.list.replaceChildren.apply(el.list, lis);
    el.empty.hidden = lis.length > 0;
  }

  // Upsert that never goes back to an older version or revives a deleted source.
  function upsertSource(source) {
    if (!source || typeof source.id !== 'string' || state.deleted.has(source.id)) return;
    const current = state.sources.get(source.id);
    if (current && Number(current.source.version) > Number(source.version)) return;
    state.sources.set(source.id, { source: source, order: current ? current.order : ++state.order });
    placeItem(source.id);
  }

  function removeSource(id) {
    state.deleted.add(id);
    state.sources.delete(id);
    const li = state.items.get(id);
    if (li) li.remove();
    state.items.delete(id);
    el.empty.hidden = state.sources.size > 0;
  }

  // ---------- REST snapshot ----------

  async function loadSnapshot() {
    const log = await api('GET', vaultPath('/events?since=0&limit=1'));
    if (!log.ok) throw log;
    const latestSeq = Number(log.data.latestSeq) || 0;
    const sources = [];
    let cursor = null;
    for (let page = 0; page < 100; page++) {
      const query = new URLSearchParams({ limit: '100' });
      if (cursor) query.set('cursor', cursor);
      const result = await api('GET', vaultPath('/sources?' + query.toString()));
      if (!result.ok) throw result;
      sources.push.apply(sources, result.data.sources || []);
      cursor = result.data.nextCursor;
      if (!cursor) break;
    }
    state.sources.clear();
    state.deleted.clear();
    state.order = 0;
    for (let i = sources.length - 1; i >= 0; i--) {
      state.sources.set(sources[i].id, { source: sources[i], order: ++state.order });
    }
    state.applied = { upTo: latestSeq, above: new Set() };
    renderAll();
  }

  function handleLoadFailure(result) {
    if (result && result.status === 401) return signedOut();
    if (result && (result.status === 403 || result.status === 404 || result.status === 400)) {
      return accessDenied(messageOf(result));
    }
    setStatus('error', 'Could not load the vault: ' + (result && result.status ? messageOf(result) : 'network error'));
  }

  // Reload everything over REST while live events wait in a buffer.
  function resync(why) {
    if (state.reloading) return state.reloading;
    setStatus('joining', 'Resyncing…');
    logLine('resync', null, why);
    state.reloading = (async function () {
      try {
        await loadSnapshot();
      } finally {
        const waiting = state.buffered;
        state.buffered = [];
        state.reloading = null;
        waiting.forEach(function (pair) { applyEvent(pair[0], pair[1], 'buffered'); });
      }
    })();
    return state.reloading.then(function () {
      if (state.joined && !state.ended) setStatus('connected', 'Connected to vault-' + vaultId);
    }, handleLoadFailure);
  }

  // ---------- events ----------

  function seqApplied(seq) {
    return seq <= state.applied.upTo || state.applied.above.has(seq);
  }

  function markApplied(seq) {
    const applied = state.applied;
    if (seq === applied.upTo + 1) {
      applied.upTo = seq;
      while (applied.above.has(applied.upTo + 1)) {
        applied.above.delete(applied.upTo + 1);
        applied.upTo += 1;
      }
    } else {
      applied.above.add(seq);
    }
    scheduleGapCheck();
  }

  // Events reach us in seq order; if a gap stays open, fetch the missing ones over REST.
  function scheduleGapCheck() {
    if (state.applied.above.size === 0) {
      clearTimeout(state.gapTimer);
      state.gapTimer = null;
      return;
    }
    if (state.gapTimer) return;
    state.gapTimer = setTimeout(async function () {
      state.gapTimer = null;
      if (state.applied.above.size === 0 || state.ended) return;
      const result = await api('GET', vaultPath('/events?since=' + state.applied.upTo + '&limit=1000')).catch(function () { return null; });
      if (result && result.ok) {
        (result.data.events || []).forEach(function (entry) { applyEvent(entry.type, entry, 'rest'); });
      }
      scheduleGapCheck();
    }, GAP_WAIT_MS);
  }

  function onVaultEvent(type, payload) {
    if (!payload || !sameId(payload.vaultId, vaultId) || state.ended) return;
    if (state.reloading) {
      state.buffered.push([type, payload]);
      return;
    }
    applyEvent(type, payload, state.joining ? 'replay' : 'live');
  }

  function applyEvent(type, payload, how) {
    const seq = Number(payload.seq);
    if (Number.isInteger(seq) && seqApplied(seq)) {
      logLine(type, payload, how + ', duplicate dropped');
      return;
    }
    logLine(type, payload, how);
    if (Number.isInteger(seq)) markApplied(seq);
    switch (type) {
      case 'source:created':
      case 'source:updated':
        upsertSource(payload.source);
        break;
      case 'source:deleted':
        removeSource(payload.sourceId);
        break;
      case 'member:updated':
      case 'member:added':
        if (payload.member && state.me && payload.member.userId === state.me.id) setRole(payload.member.role);
        break;
      case 'member:removed':
        if (payload.member && state.me && payload.member.userId === state.me.id) accessDenied('Removed from the vault');
        break;
      case 'vault:updated':
        if (payload.vault && typeof payload.vault.name === 'string') showVaultName(payload.vault.name);
        break;
      case 'vault:deleted':
        accessDenied('The vault was deleted');
        break;
    }
  }

  function logLine(type, payload, how) {
    const li = document.createElement('li');
    li.dataset.testid = 'event-log-entry';
    li.dataset.type = type;
    const parts = [];
    if (payload && payload.seq !== undefined) {
      li.dataset.seq = String(payload.seq);
      parts.push('seq ' + payload.seq);
    }
    if (payload && typeof payload.timestamp === 'string') {
      const latency = Date.now() - Date.parse(payload.timestamp);
      if (Number.isFinite(latency)) {
        li.dataset.latencyMs = String(latency);
        parts.push(latency + ' ms');
      }
    }
    if (how) parts.push(how);
    const time = document.createElement('span');
    time.className = 'muted';
    time.textContent = new Date().toLocaleTimeString() + ' ';
    const name = document.createElement('span');
    name.className = 'type';
    name.textContent = type;
    li.append(time, name, document.createTextNode(parts.length ? ' · ' + parts.join(' · ') : ''));
    el.log.insertBefore(li, el.log.firstChild);
    while (el.log.children.length > LOG_LIMIT) el.log.lastChild.remove();
  }

  // ---------- role, name, presence ----------

  function setRole(role) {
    if (typeof role !== 'string' || role === state.role) return;
    state.role = role;
    el.role.textContent = role;
    el.addCard.hidden = !canWrite();
    renderAll();
  }

  function showVaultName(name) {
    el.name.textContent = name;
    document.title = name + ' · SyncScript Vault';
  }

  function renderPresence() {
    const users = Array.from(state.presence.values());
    users.sort(function (a, b) { return String(a.userName).localeCompare(String(b.userName)); });
    el.presence.replaceChildren.apply(el.presence, users.map(function (user) {
      const li = document.createElement('li');
      li.dataset.testid = 'presence-item';
      li.dataset.userId = user.userId;
      li.textContent = user.userName + ' ';
      const role = document.createElement('span');
      role.className = 'role';
      role.textContent = '(' + user.role + ')';
      li.appendChild(role);
      return li;
    }));
  }

  function onPresence(payload) {
    if (!payload || !sameId(payload.vaultId, vaultId) || state.ended) return;
    if (!state.snapshot) state.snapshot = new Map();
    (payload.users || []).forEach(function (user) { state.snapshot.set(user.userId, user); });
    if (payload.more === true) return;
    logLine('presence', null, state.snapshot.size + ' online');
    state.presence = state.snapshot;
    state.snapshot = null;
    state.presenceWaiting = false;
    state.pendingDiffs.splice(0).forEach(applyPresenceDiff);
    renderPresence();
  }

  function onPresenceDiff(payload) {
    if (!payload || !sameId(payload.vaultId, vaultId) || state.ended) return;
    if (state.presenceWaiting) {
      state.pendingDiffs.push(payload);
      return;
    }
    applyPresenceDiff(payload);
    renderPresence();
  }

  // Within one batched diff a user in both lists left and came back (or came and went):
  // either way their state before the batch stands.
  function applyPresenceDiff(payload) {
    const joins = payload.joins || [];
    const leaves = new Set(payload.leaves || []);
    logLine('presence:diff', null, '+' + joins.length + ' −' + leaves.size);
    const joinIds = new Set(joins.map(function (user) { return user.userId; }));
    leaves.forEach(function (userId) { if (!joinIds.has(userId)) state.presence.delete(userId); });
    joins.forEach(function (user) {
      if (!leaves.has(user.userId) || state.presence.has(user.userId)) state.presence.set(user.userId, user);
    });
  }

  async function join() {
    if (state.ended) return;
    if (state.reloading) await state.reloading.catch(function () {});
    state.joining = true;
    state.joined = false;
    state.snapshot = null;
    state.presenceWaiting = true;
    state.pendingDiffs = [];
    const since = state.applied.upTo;
    state.socket.emit('vault:join', { vaultId: vaultId, since: since }, function (ack) {
      if (ack && ack.ok) onJoined(ack, false);
      else if (ack && ack.ok === false) onJoinRefused(ack.error);
    });
  }

  // The ack and `vault:joined` both announce one join; either may come first. Only the
  // event is ordered after the replay, so only it can reveal a gap.
  function onJoined(info, fromEvent) {
    if (state.ended) return;
    if (info.role) setRole(info.role);
    const first = !state.joined;
    if (first) {
      state.joining = false;
      state.joined = true;
      state.joinRetry = 0;
      state.everJoined = true;
      logLine('vault:joined', null, 'latestSeq ' + info.latestSeq + (info.resync ? ', resync' : ''));
    }
    if (info.resync) {
      if (first) resync('server asked for a resync');
    } else if (fromEvent && !state.reloading && Number(info.latestSeq) > state.applied.upTo) {
      resync('missing events up to seq ' + info.latestSeq);
    } else if (first && !state.reloading) {
      setStatus('connected', 'Connected to vault-' + vaultId);
    }
  }

  // Only FORBIDDEN means no access; a busy server (UNAVAILABLE, RATE_LIMITED) is asked again.
  function onJoinRefused(error) {
    if (state.joined) return;
    state.joining = false;
    const code = error && error.code;
    if (code === 'UNAUTHORIZED') return signedOut();
    if (code === 'FORBIDDEN' || code === 'NOT_FOUND' || code === 'VALIDATION_ERROR') {
      accessDenied(error && error.message);
      return;
    }
    logLine('join refused', null, code || 'no reason');
    setStatus('reconnecting', 'Reconnecting…');
    state.joinRetry = Math.min((state.joinRetry || 250) * 2, 5000);
    setTimeout(function () { if (state.socket && state.socket.connected) join(); }, state.joinRetry);
  }

  function connect() {
    const socket = io({ reconnectionDelay: 250, reconnectionDelayMax: 500 });
    state.socket = socket;

    socket.on('connect', join);
    socket.on('disconnect', function (reason) {
      state.joined = false;
      state.joining = false;
      state.presence.clear();
      renderPresence();
      if (state.ended) return;
      setStatus('reconnecting', 'Reconnecting…');
      logLine('disconnect', null, reason);
      // The server closed us on purpose (logout, overload): try once more; an ended
      // session then surfaces as connect_error UNAUTHORIZED.
      if (reason === 'io server disconnect') setTimeout(function () { socket.connect(); }, 500);
    });
    socket.on('connect_error', function (err) {
      if (state.ended) return;
      const message = err && err.message;
      if (message === 'UNAUTHORIZED') return signedOut();
      if (socket.active) {
        setStatus('reconnecting', state.everJoined ? 'Reconnecting…' : 'Connecting…');
      } else {
        setStatus('error', 'Connection refused: ' + message);
      }
    });

    VAULT_EVENTS.forEach(function (type) {
      socket.on(type, function (payload) { onVaultEvent(type, payload); });
    });
    socket.on('vault:joined', function (payload) {
      if (payload && sameId(payload.vaultId, vaultId)) onJoined(payload, true);
    });
    socket.on('vault:revoked', function (payload) {
      if (!payload || sameId(payload.vaultId, vaultId)) accessDenied(payload && payload.reason);
    });
    socket.on('presence', onPresence);
    socket.on('presence:diff', onPresenceDiff);
    socket.on('error', function (payload) {
      const code = payload && payload.code;
      logLine('error', null, (code || '') + ' ' + ((payload && payload.message) || ''));
      if (state.joining && code === 'FORBIDDEN') onJoinRefused(payload);
    });
  }

  // ---------- forms ----------

  el.addForm.addEventListener('submit', async function (event) {
    event.preventDefault();
    el.addError.textContent = '';
    const submit = el.addForm.querySelector('[data-testid="source-submit"]');
    const title = el.addForm.elements.title.value;
    const fileUrl = el.addForm.elements.fileUrl.value.trim();
    submit.disabled = true;
    try {
      const result = await api('POST', vaultPath('/sources'), { title: title, fileUrl: fileUrl });
      if (result.ok) {
        el.addForm.reset();
        upsertSource(result.data.source);
      } else if (result.status === 401) {
        signedOut();
      } else {
        el.addError.textContent = messageOf(result);
      }
    } catch (_) {
      el.addError.textContent = 'Cannot reach the server. Try again.';
    } finally {
      submit.disabled = false;
    }
  });

  function showItemError(li, message) {
    const error = li.querySelector('[data-testid="source-item-error"]');
    error.textContent = message || '';
    error.hidden = !message;
  }

  function openEditor(li, id) {
    const entry = state.sources.get(id);
    const form = li.querySelector('form');
    if (!entry || !form) return;
    form.elements.title.value = entry.source.title;
    form.elements.fileUrl.value = entry.source.fileUrl;
    form.hidden = false;
    showItemError(li, '');
    form.elements.title.focus();
  }

  async function saveEdit(li, id, form, save) {
    const entry = state.sources.get(id);
    if (!entry) return;
    const body = { title: form.elements.title.value, version: entry.source.version };
    const fileUrl = form.elements.fileUrl.value.trim();
    if (fileUrl !== entry.source.fileUrl) body.fileUrl = fileUrl;
    save.disabled = true;
    try {
      const result = await api('PATCH', '/api/sources/' + encodeURIComponent(id), body);
      if (result.ok) {
        form.hidden = true;
        showItemError(li, '');
        upsertSource(result.data.source);
      } else if (result.status === 409) {
        showItemError(li, 'Someone changed this source meanwhile; the latest version is shown.');
        const fresh = await api('GET', '/api/sources/' + encodeURIComponent(id));
        if (fresh.ok) upsertSource(fresh.data.source);
        form.hidden = true;
      } else if (result.status === 404) {
        removeSource(id);
      } else if (result.status === 401) {
        signedOut();
      } else {
        showItemError(li, messageOf(result));
      }
    } catch (_) {
      showItemError(li, 'Cannot reach the server. Try again.');
    } finally {
      save.disabled = false;
    }
  }

  async function deleteSource(li, id, button) {
    button.disabled = true;
    try {
      const result = await api('DELETE', '/api/sources/' + encodeURIComponent(id));
      if (result.ok || result.status === 404) removeSource(id);
      else if (result.status === 401) signedOut();
      else showItemError(li, messageOf(result));
    } catch (_) {
      showItemError(li, 'Cannot reach the server. Try again.');
    } finally {
      button.disabled = false;
    }
  }

  // ---------- start ----------

  async function start() {
    if (!vaultId) {
      setStatus('error', 'No vault given: open this page from the vault list.');
      return;
    }
    setStatus('connecting', 'Connecting…');
    const session = await api('GET', '/api/auth/session');
    if (session.status === 401) return signedOut();
    if (session.ok && session.data && session.data.user) {
      state.me = session.data.user;
      el.user.textContent = state.me.name + ' <' + state.me.email + '>';
    }
    const vault = await api('GET', vaultPath(''));
    if (!vault.ok) return handleLoadFailure(vault);
    if (vault.data.vault && typeof vault.data.vault.name === 'string') showVaultName(vault.data.vault.name);
    setRole(vault.data.role);
    await loadSnapshot();
    connect();
  }

  start().catch(function (err) {
    if (err && typeof err.status === 'number') handleLoadFailure(err);
    else setStatus('error', 'Cannot reach the server. Reload to try again.');
  });
})();
