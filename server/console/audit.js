// The audit log (GET /api/audit, admin), filtered and paged.

import {api, explain} from './api.js';
import {fill, h, table, when} from './dom.js';

export async function showAudit(view) {
  const form = h('form', {class: 'filters', role: 'search'},
    h('label', {}, 'Action ', h('select', {name: 'action'},
      ['', 'upload', 'delete', 'read', 'access_denied', 'zapi_send', 'zapi_attempt',
       'token_issued', 'key_created', 'key_revoked', 'import_url', 'legacy_import',
       'legacy_redirect', 'quarantine', 'quarantine_release']
        .map(a => h('option', {value: a}, a || 'any')))),
    h('label', {}, 'Key or actor ', h('input', {name: 'actor'})),
    h('label', {}, 'Media id ', h('input', {name: 'media_id', inputmode: 'numeric', pattern: '[0-9]*'})),
    h('label', {}, 'Since ', h('input', {name: 'since', type: 'date'})),
    h('button', {type: 'submit'}, 'Filter'));
  const rows = h('div'), out = h('p', {class: 'error', role: 'alert'});
  const more = h('button', {type: 'button', hidden: true}, 'More');
  fill(view, h('h1', {}, 'Audit log'), form, out, rows, more);
  let entries = [], cursor = null, filters = {};
  async function load(reset) {
    const q = new URLSearchParams({limit: '100'});
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (!reset && cursor) q.set('cursor', cursor);
    try {
      const page = await api(`/api/audit?${q}`);
      entries = reset ? page.entries : entries.concat(page.entries);
      cursor = page.next_cursor ?? null;
      more.hidden = !cursor;
      out.textContent = '';
      fill(rows, entries.length ? table(entries, [
        ['at', 'When', when], ['actor', 'Who'], ['action', 'What'],
        ['media_id', 'Media', v => v ? h('a', {href: `#/media/${v}`}, String(v)) : '–'],
        ['message_id', 'Message'], ['client_addr', 'Address'], ['outcome', 'Outcome'],
        ['count', 'Count']]) : h('p', {class: 'muted'}, 'No entries.'));
    } catch (err) {
      out.textContent = explain(err);
    }
  }
  form.addEventListener('submit', e => {
    e.preventDefault();
    filters = Object.fromEntries(new FormData(form));
    load(true);
  });
  more.addEventListener('click', () => load(false));
  await load(true);
}
