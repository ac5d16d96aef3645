// A table fed a page at a time from a route answering {items, next_cursor}, with a
// "More" button while the service has more.

import {explain} from './api.js';
import {fill, h, table} from './dom.js';

/** ``load(cursor)`` → a page; returns {box, ready}: ``ready`` settles with the first
 *  page (rejecting as it does, for the view to say why). */
export function pagedTable(load, columns, empty) {
  const rows = h('div'), error = h('p', {class: 'error', role: 'alert'});
  const more = h('button', {type: 'button', class: 'more', hidden: true}, 'More');
  let items = [], cursor = null;
  async function next() {
    more.disabled = true;
    try {
      const page = await load(cursor);
      items = items.concat(page.items);
      cursor = page.next_cursor ?? null;
    } finally {
      more.disabled = false;
    }
    more.hidden = !cursor;
    fill(rows, items.length ? table(items, columns) : h('p', {class: 'muted'}, empty));
  }
  more.addEventListener('click', () => next().then(() => { error.textContent = ''; },
                                                   err => { error.textContent = explain(err); }));
  return {box: h('div', {}, rows, error, more), ready: next()};
}

/** ``?limit=`` and, after the first page, ``&cursor=`` with whatever else ``params`` holds. */
export function pageQuery(params, cursor) {
  const q = new URLSearchParams(params);
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}
