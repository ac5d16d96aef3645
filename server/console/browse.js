// Browsing: the most recent media, a search (type, dates, name), one message's media
// with its upload zone; all as a grid of thumbnails.

import {api, can, explain} from './api.js';
import {bytes, fill, h} from './dom.js';
import {placeholderCanvas} from './blurhash.js';
import {uploadZone} from './upload.js';

const PAGE = 48;

/** The smallest thumbnail at least 160 px wide, else the largest, else the preview. */
export function thumbnailUrl(m) {
  const thumbs = [...(m.thumbnails || [])].sort((a, b) => a.width - b.width);
  const fit = thumbs.find(t => t.width >= 160) || thumbs[thumbs.length - 1];
  return fit?.url || m.variants?.preview?.url || null;
}

export function tile(m) {
  // Quarantined content answers 451: an admin (who is told) gets no broken picture,
  // and a thumbnail refused to anyone else leaves the placeholder showing.
  const url = m.quarantined ? null : thumbnailUrl(m);
  const picture = h('span', {class: 'picture'},
    placeholderCanvas(m.placeholder),
    url ? h('img', {src: url, alt: '', loading: 'lazy', class: 'thumb',
                    onerror: e => e.target.remove()})
        : h('span', {class: `icon icon-${m.media_type}`, 'aria-hidden': 'true'},
            m.media_type));
  return h('li', {class: 'tile', 'data-media-id': m.id},
    h('a', {href: `#/media/${m.id}`},
      picture,
      h('span', {class: 'name'}, m.original_name || m.file_name),
      h('span', {class: 'facts'}, `${m.media_type} · ${bytes(m.file_size)}`,
        m.quarantined ? h('span', {class: 'badge'}, ' quarantined') : null)));
}

/** A grid fed page by page from ``load(cursor)`` → {items, next_cursor}. */
export function grid(load, empty = 'Nothing here yet.') {
  const list = h('ul', {class: 'grid', 'aria-label': 'Media'});
  const more = h('button', {type: 'button', hidden: true}, 'More');
  const status = h('p', {class: 'muted'});
  let cursor = null;
  async function next() {
    more.disabled = true;
    const page = await load(cursor);
    list.append(...page.items.map(tile));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    status.textContent = list.children.length ? '' : empty;
  }
  more.addEventListener('click', next);
  const box = h('div', {}, status, list, more);
  return {box, ready: next()};
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  return q.toString();
}

export async function showRecent(view) {
  const form = h('form', {class: 'filters', role: 'search'},
    h('label', {}, 'Name contains ', h('input', {name: 'name', type: 'search'})),
    h('label', {}, 'Type ', h('select', {name: 'media_type'},
      ['', 'image', 'video', 'audio', 'document'].map(t => h('option', {value: t}, t || 'any')))),
    h('label', {}, 'From ', h('input', {name: 'since', type: 'date'})),
    h('label', {}, 'Before ', h('input', {name: 'until', type: 'date'})),
    h('button', {type: 'submit'}, 'Search'));
  const results = h('div');
  fill(view, h('h1', {}, 'Recent media'), form, results);
  async function search(filters) {
    const g = grid(cursor => api(`/api/media?${query({...filters, limit: PAGE, cursor})}`),
                   'No media matches.');
    fill(results, g.box);
    await g.ready;
  }
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    try {
      await search(f);
    } catch (err) {
      fill(results, h('p', {class: 'error', role: 'alert'}, explain(err)));
    }
  });
  await search({});
}

export async function showMessage(view, messageId) {
  const form = h('form', {class: 'filters'},
    h('label', {}, 'Message id ', h('input', {name: 'id', inputmode: 'numeric',
      pattern: '[0-9]+', required: true, value: messageId ?? ''})),
    h('button', {type: 'submit'}, 'Open'));
  form.addEventListener('submit', e => {
    e.preventDefault();
    location.hash = `#/message/${new FormData(form).get('id')}`;
  });
  if (messageId === null) {
    fill(view, h('h1', {}, 'Messages'), form);
    return;
  }
  const media = h('div');
  async function load() {
    const g = grid(cursor => api(`/api/messages/${messageId}/media?${query({limit: PAGE, cursor})}`),
                   'This message has no media yet.');
    fill(media, g.box);
    await g.ready;
  }
  // After each upload the grid is read again; the uploads' rows stay.
  const zone = can.write() ? uploadZone(messageId, () => load().catch(() => {})) : null;
  fill(view, h('h1', {}, `Message ${messageId}`), form, zone, media);
  await load();
}
