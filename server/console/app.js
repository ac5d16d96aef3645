// The console's entry: sign-in, the navigation for what the key may do, and the
// views by location hash (#/recent, #/message/7, #/media/12, #/dashboard, #/audit,
// #/quarantine, #/usage). The hash never carries the key.

import {api, explain, session} from './api.js';
import {h, fill} from './dom.js';
import {showRecent, showMessage} from './browse.js';
import {showQuarantine} from './quarantine.js';
import {showUsage} from './usage.js';
import {showMedia} from './detail.js';
import {showDashboard} from './dashboard.js';
import {showAudit} from './audit.js';

const $ = id => document.getElementById(id);
const view = $('view');

const ROUTES = [
  [/^#\/media\/(\d+)$/, m => showMedia(view, Number(m[1]))],
  [/^#\/message(?:\/(\d+))?$/, m => showMessage(view, m[1] ? Number(m[1]) : null)],
  [/^#\/dashboard$/, () => showDashboard(view)],
  [/^#\/audit$/, () => showAudit(view)],
  [/^#\/quarantine$/, () => showQuarantine(view)],
  [/^#\/usage$/, () => showUsage(view)],
  [/^#?\/?(recent)?$/, () => showRecent(view)],
];

async function route() {
  if (!session.who) return;
  const hash = location.hash || '#/recent';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === hash.split('/').slice(0, 2).join('/')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const found = ROUTES.find(([re]) => re.test(hash));
  if (!found) return fill(view, h('p', {class: 'error'}, 'No such page.'));
  try {
    await found[1](hash.match(found[0]));
  } catch (e) {
    if (e.status === 401) {   // the key was revoked meanwhile: back to the sign-in
      signOut();
      $('signin-error').textContent = explain(e);
      return;
    }
    fill(view, h('p', {class: 'error', role: 'alert'}, explain(e)));
  }
}

/** Ask who the key is; the navigation then offers only what it may do. */
async function signIn(key) {
  const who = await api('/api/whoami', {key});
  session.key = key;
  session.who = who;
  for (const el of document.querySelectorAll('[data-scope]')) {
    const scopes = el.dataset.scope === 'admin' ? ['admin'] : ['write', 'admin'];
    el.hidden = !scopes.includes(who.scope);
  }
  fill($('who'), h('span', {}, `${who.name} `), h('span', {class: 'scope'}, who.scope));
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('signout').hidden = false;
  await route();
}

function signOut() {
  session.key = null;
  session.who = null;
  $('nav').hidden = true;
  $('signout').hidden = true;
  fill($('who'));
  fill(view);
  $('signin').hidden = false;
  $('key').value = '';
  $('key').focus();
}

$('signin-form').addEventListener('submit', async e => {
  e.preventDefault();
  const error = $('signin-error');
  error.textContent = '';
  const key = $('key').value.trim();
  try {
    await signIn(key);
  } catch (err) {
    session.key = null;
    error.textContent = err.code === 'invalid_credentials' || err.code === 'unauthorized'
      ? 'Sign-in failed: that key is unknown, revoked or mistyped.'
      : `Sign-in failed. ${explain(err)}`;
    $('key').focus();
  }
});
$('signout').addEventListener('click', signOut);
window.addEventListener('hashchange', route);

if (session.key) {
  signIn(session.key).catch(() => signOut());
} else {
  signOut();
}
