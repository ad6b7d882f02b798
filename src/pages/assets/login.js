// Sign-in form. Sends the credentials as JSON and, on success, follows `?next=`
// only when it is a path on this site (never `//host` or `/\host`), else `/`.
(function () {
  'use strict';

  function safeNext(raw) {
    if (typeof raw !== 'string' || raw.length === 0) return '/';
    if (raw[0] !== '/' || raw[1] === '/' || raw[1] === '\\') return '/';
    if (/[\u0000-\u001f\u007f]/.test(raw)) return '/';
    try {
      const target = new URL(raw, window.location.origin);
      if (target.origin !== window.location.origin) return '/';
      return target.pathname + target.search + target.hash;
    } catch (_) {
      return '/';
    }
  }

  async function errorMessage(res) {
    try {
      const body = await res.json();
      if (body && body.error && typeof body.error.message === 'string') return body.error.message;
    } catch (_) { /* not JSON */ }
    return 'Sign-in failed (HTTP ' + res.status + ')';
  }

  const form = document.getElementById('login-form');
  const email = form.querySelector('[data-testid="login-email"]');
  const password = form.querySelector('[data-testid="login-password"]');
  const submit = form.querySelector('[data-testid="login-submit"]');
  const error = form.querySelector('[data-testid="login-error"]');

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      const res = await fetch('/api/auth/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        credentials: 'same-origin',
        body: JSON.stringify({ email: email.value, password: password.value }),
      });
      if (res.ok) {
        const next = new URLSearchParams(window.location.search).get('next');
        window.location.assign(safeNext(next));
        return;
      }
      error.textContent = await errorMessage(res);
    } catch (_) {
      error.textContent = 'Cannot reach the server. Try again.';
    }
    submit.disabled = false;
  });

  email.focus();
})();
