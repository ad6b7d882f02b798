// The realtime page's source list: a snapshot plus the vault's events drawn on top, newest
// first, with edit and delete controls for writers.
//
// Invariants:
// - An upsert never goes back to an older version, and never revives a source deleted since
//   the last snapshot, so an event applied again after a reload changes nothing.
// - User text only ever reaches the DOM through textContent / createElement.

/** `actions`: { update(id, fields) → source, remove(id), fetch(id) → source }. */
export class SourceList {
  constructor(listEl, emptyEl, actions) {
    this.listEl = listEl;
    this.emptyEl = emptyEl;
    this.actions = actions;
    this.writable = false;
    this.sources = new Map(); // id -> {source, order}
    this.items = new Map(); // id -> <li>
    this.deleted = new Set();
    this.order = 0;
  }

  /** A fresh snapshot (newest first, as the API lists them). */
  replace(sources) {
    this.sources.clear();
    this.deleted.clear();
    this.order = 0;
    for (let i = sources.length - 1; i >= 0; i -= 1) {
      this.sources.set(sources[i].id, { source: sources[i], order: ++this.order });
    }
    this.render();
  }

  clear() {
    this.replace([]);
  }

  setWritable(writable) {
    if (writable === this.writable) return;
    this.writable = writable;
    this.render();
  }

  upsert(source) {
    if (!source || typeof source.id !== 'string' || this.deleted.has(source.id)) return;
    const current = this.sources.get(source.id);
    if (current && Number(current.source.version) > Number(source.version)) return;
    this.sources.set(source.id, { source, order: current ? current.order : ++this.order });
    this.#place(source.id);
  }

  remove(id) {
    this.deleted.add(id);
    this.sources.delete(id);
    this.items.get(id)?.remove();
    this.items.delete(id);
    this.emptyEl.hidden = this.sources.size > 0;
  }

  render() {
    this.items.clear();
    const entries = Array.from(this.sources.entries()).sort((a, b) => (newerThan(a[1], b[1]) ? -1 : 1));
    const lis = entries.map(([id, entry]) => {
      const li = this.#build(entry.source);
      this.items.set(id, li);
      return li;
    });
    this.listEl.replaceChildren(...lis);
    this.emptyEl.hidden = lis.length > 0;
  }

  #place(id) {
    const entry = this.sources.get(id);
    let li = this.items.get(id);
    if (li) {
      fill(li, entry.source);
      if (li.parentNode === this.listEl) return;
    } else {
      li = this.#build(entry.source);
      this.items.set(id, li);
    }
    const before = Array.from(this.listEl.children).find((child) => {
      const other = this.sources.get(child.dataset.sourceId);
      return other && newerThan(entry, other);
    });
    this.listEl.insertBefore(li, before || null);
    this.emptyEl.hidden = true;
  }

  #build(source) {
    const li = node('li', { testid: 'source-item' });
    li.dataset.sourceId = source.id;
    const main = node('div', { className: 'source-main' });
    const text = node('div', { className: 'source-text' });
    const link = node('a', { className: 'source-url', testid: 'source-url' });
    link.rel = 'noopener noreferrer';
    link.target = '_blank';
    text.append(node('div', { className: 'source-title', testid: 'source-title' }), link);
    main.appendChild(text);
    li.appendChild(main);
    if (this.writable) {
      const edit = node('button', { className: 'secondary small', testid: 'source-edit', text: 'Edit' });
      const del = node('button', { className: 'danger small', testid: 'source-delete', text: 'Delete' });
      const actions = node('div', { className: 'source-actions' });
      actions.append(edit, del);
      main.appendChild(actions);
      const form = this.#editForm(li, source.id);
      li.appendChild(form);
      edit.addEventListener('click', () => this.#openEditor(li, source.id, form));
      del.addEventListener('click', () => this.#delete(li, source.id, del));
    }
    const error = node('p', { className: 'error', testid: 'source-item-error' });
    error.hidden = true;
    li.appendChild(error);
    fill(li, source);
    return li;
  }

  #editForm(li, id) {
    const form = node('form', { className: 'row source-edit-form' });
    form.noValidate = true;
    form.hidden = true;
    const title = node('input', { testid: 'source-edit-title' });
    title.name = 'title';
    title.maxLength = 300;
    const url = node('input', { testid: 'source-edit-url' });
    url.name = 'fileUrl';
    url.type = 'url';
    url.maxLength = 2048;
    const save = node('button', { testid: 'source-edit-save', text: 'Save' });
    save.type = 'submit';
    const cancel = node('button', { className: 'secondary', testid: 'source-edit-cancel', text: 'Cancel' });
    form.append(labelled('Title', title), labelled('URL', url), save, cancel);
    cancel.addEventListener('click', () => { form.hidden = true; });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#save(li, id, form, save);
    });
    return form;
  }

  #openEditor(li, id, form) {
    const entry = this.sources.get(id);
    if (!entry) return;
    form.elements.title.value = entry.source.title;
    form.elements.fileUrl.value = entry.source.fileUrl;
    form.hidden = false;
    showError(li, '');
    form.elements.title.focus();
  }

  async #save(li, id, form, save) {
    const entry = this.sources.get(id);
    if (!entry) return;
    const fields = { title: form.elements.title.value, version: entry.source.version };
    const fileUrl = form.elements.fileUrl.value.trim();
    if (fileUrl !== entry.source.fileUrl) fields.fileUrl = fileUrl;
    save.disabled = true;
    try {
      this.upsert(await this.actions.update(id, fields));
      form.hidden = true;
      showError(li, '');
    } catch (err) {
      if (err.code === 'CONFLICT') {
        showError(li, 'Someone changed this source meanwhile; the latest version is shown.');
        form.hidden = true;
        this.upsert(await this.actions.fetch(id).catch(() => null));
      } else if (err.code === 'NOT_FOUND') {
        this.remove(id);
      } else {
        showError(li, messageOf(err));
      }
    } finally {
      save.disabled = false;
    }
  }

  async #delete(li, id, button) {
    button.disabled = true;
    try {
      await this.actions.remove(id);
      this.remove(id);
    } catch (err) {
      if (err.code === 'NOT_FOUND') this.remove(id);
      else showError(li, messageOf(err));
    } finally {
      button.disabled = false;
    }
  }
}

/** A refusal's message, with its first field detail when there is one. */
export function messageOf(err) {
  const detail = Array.isArray(err.details) ? err.details[0] : null;
  if (detail && detail.message) return `${err.message}: ${detail.field ? `${detail.field} ` : ''}${detail.message}`;
  return err.message || err.code || 'Request failed';
}

function node(tag, { className, testid, text } = {}) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (testid) el.dataset.testid = testid;
  if (text) el.textContent = text;
  if (tag === 'button') el.type = 'button';
  return el;
}

function labelled(text, input) {
  const label = document.createElement('label');
  label.textContent = text;
  label.appendChild(input);
  return label;
}

function fill(li, source) {
  li.querySelector('[data-testid="source-title"]').textContent = source.title;
  const link = li.querySelector('[data-testid="source-url"]');
  link.textContent = source.fileUrl;
  const href = safeHref(source.fileUrl);
  if (href) link.href = href; else link.removeAttribute('href');
  li.dataset.version = String(source.version);
}

function showError(li, message) {
  const error = li.querySelector('[data-testid="source-item-error"]');
  error.textContent = message || '';
  error.hidden = !message;
}

function safeHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

function sortKey(entry) {
  const t = Date.parse(entry.source.createdAt);
  return [Number.isFinite(t) ? t : 0, entry.order];
}

function newerThan(a, b) {
  const [ta, oa] = sortKey(a);
  const [tb, ob] = sortKey(b);
  return ta !== tb ? ta > tb : oa > ob;
}
