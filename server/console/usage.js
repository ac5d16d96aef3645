// Usage and limits per key (GET /api/usage): an admin key sees every key's, a page at
// a time; another key its own.

import {api, can} from './api.js';
import {bytes, fill, h, table} from './dom.js';
import {pagedTable, pageQuery} from './paged.js';

const PAGE = 50;
const none = format => v => (v === null || v === undefined ? 'none' : format(v));
const COLUMNS = [
  ['key', 'Key'], ['files', 'Files'],
  ['bytes', 'Bytes', v => h('span', {title: `${v} bytes`}, bytes(v))],
  ['quota_bytes', 'Byte quota', none(bytes)], ['quota_files', 'File quota', none(String)],
  ['uploads_per_minute', 'Uploads per minute', none(String)],
];

/** The usage table in ``box`` (its own section on the dashboard and the usage page). */
export async function usagePanel(box) {
  if (!can.admin()) {
    fill(box, h('h2', {}, 'Usage of this key'), table([await api('/api/usage')], COLUMNS));
    return;
  }
  const list = pagedTable(cursor => api(`/api/usage?${pageQuery({all: 1, limit: PAGE}, cursor)}`),
                          COLUMNS, 'No active keys.');
  fill(box, h('h2', {}, 'Usage per key'), list.box);
  await list.ready;
}

export async function showUsage(view) {
  const box = h('section', {id: 'usage'});
  fill(view, h('h1', {}, 'Usage'), box);
  await usagePanel(box);
}
