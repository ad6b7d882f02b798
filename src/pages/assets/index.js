// The signed-in user's vaults, a form to create one, and sign-out.
// All user text goes in through textContent.
(function () {
  'use strict';

  const list = document.getElementById('vault-list');
  const empty = document.getElementById('vaults-empty');
  const form = document.getElementById('create-vault');
  const formError = form.querySelector('[data-testid="vault-error"]');

  function toLogin() {
    window.location.assign('/login?next=/');
  }

  const api = window.syncscriptApi;

  function messageOf(result) {
    const err = result.data && result.data.error;
    return err && typeof err.message === 'string' ? err.message : 'Request failed (HTTP ' + result.status + ')';
  }

  function vaultItem(vault) {
    const li = document.createElement('li');
    li.dataset.testid = 'vault-item';
    li.dataset.vaultId = vault.id;
    const link = document.createElement('a');
    link.href = '/test/realtime?vaultId=' + encodeURIComponent(vault.id);
    link.textContent = vault.name;
    li.appendChild(link);
    if (vault.role) {
      const role = document.createElement('span');
      role.className = 'pill';
      role.textContent = vault.role;
      li.appendChild(document.createTextNode(' '));
      li.appendChild(role);
    }
    if (vault.description) {
      const desc = document.createElement('p');
      desc.className = 'muted';
      desc.textContent = vault.description;
      li.appendChild(desc);
    }
    return li;
  }

  function render(vaults) {
    list.replaceChildren.apply(list, vaults.map(vaultItem));
    empty.hidden = vaults.length > 0;
  }

  async function load() {
    const session = await api('GET', '/api/auth/session');
    if (session.status === 401) return toLogin();
    if (session.ok && session.data && session.data.user) {
      const user = session.data.user;
      document.querySelector('[data-testid="current-user"]').textContent = user.name + ' <' + user.email + '>';
    }
    const result = await api('GET', '/api/vaults');
    if (result.status === 401) return toLogin();
    if (!result.ok) {
      empty.hidden = false;
      empty.textContent = messageOf(result);
      return;
    }
    render((result.data && result.data.vaults) || []);
  }

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    formError.textContent = '';
    const name = form.elements.name.value.trim();
    const description = form.elements.description.value.trim();
    const body = { name: name };
    if (description) body.description = description;
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const result = await api('POST', '/api/vaults', body);
      if (result.status === 401) return toLogin();
      if (!result.ok) {
        formError.textContent = messageOf(result);
      } else {
        form.reset();
        await load();
      }
    } catch (_) {
      formError.textContent = 'Cannot reach the server. Try again.';
    } finally {
      submit.disabled = false;
    }
  });

  document.getElementById('logout').addEventListener('click', async function () {
    try { await api('POST', '/api/auth/logout'); } catch (_) { /* go to login anyway */ }
    window.location.assign('/login');
  });

  load().catch(function () {
    empty.hidden = false;
    empty.textContent = 'Cannot reach the server. Reload to try again.';
  });
})();
