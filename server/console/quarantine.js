// Quarantine (admin keys): what is quarantined (GET /api/quarantine, a page at a time),
// and on a media's page the form that quarantines it with a reason, or releases it.

import {api, explain} from './api.js';
import {fill, h, when} from './dom.js';
import {pagedTable, pageQuery} from './paged.js';

const PAGE = 50;

export async function showQuarantine(view) {
  const list = pagedTable(
    cursor => api(`/api/quarantine?${pageQuery({limit: PAGE}, cursor)}`),
    [['sha256', 'Content (SHA-256)', v => h('code', {class: 'hash'}, v)],
     ['reason', 'Reason'], ['quarantined_by', 'By'], ['quarantined_at', 'When', when],
     ['media', 'Media showing it'],
     ['media_id', 'Quarantined from',
      v => (v ? h('a', {href: `#/media/${v}`}, `media ${v}`) : '–')]],
    'Nothing is quarantined.');
  fill(view, h('h1', {}, 'Quarantine'),
    h('p', {class: 'muted'}, 'Quarantined content answers 451 everywhere it is shown, ',
      'until it is released from one of its media.'),
    list.box);
  await list.ready;
}

/** On a media's page: quarantine (a reason is required) or release; ``done`` runs
 *  after the service agreed, ``out`` shows what went wrong. */
export function quarantineControl(m, done, out) {
  if (m.quarantined) {
    const release = h('button', {type: 'button', id: 'release'}, 'Release');
    release.addEventListener('click', async () => {
      try {
        await api(`/api/media/${m.id}/quarantine`, {method: 'DELETE'});
        await done();
      } catch (err) {
        out.textContent = explain(err);
      }
    });
    return release;
  }
  const reason = h('input', {name: 'reason', id: 'quarantine-reason', required: true,
                             maxlength: 1000, placeholder: 'why, for the record'});
  // novalidate: the page says what is missing itself, in words, beside the field.
  const form = h('form', {class: 'filters', novalidate: true, id: 'quarantine-form'},
    h('label', {}, 'Reason ', reason),
    h('button', {type: 'submit', id: 'quarantine'}, 'Quarantine'));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const text = reason.value.trim();
    if (!text) {
      reason.setAttribute('aria-invalid', 'true');
      out.textContent = 'Give a reason to quarantine this media: it is kept with the quarantine.';
      reason.focus();
      return;
    }
    reason.removeAttribute('aria-invalid');
    try {
      await api(`/api/media/${m.id}/quarantine`, {method: 'POST', body: {reason: text}});
      await done();
    } catch (err) {
      out.textContent = explain(err);
    }
  });
  return form;
}
