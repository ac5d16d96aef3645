// One media: every fact, the browser's own viewer or player, and what may be done to
// it (delete, quarantine and release, send to WhatsApp and watch the delivery).

import {api, can, explain} from './api.js';
import {bytes, fill, h, seconds, table, when} from './dom.js';
import {tile} from './browse.js';
import {quarantineControl} from './quarantine.js';

const FINAL = new Set(['sent', 'failed', 'unknown']);

function viewer(m) {
  if (m.quarantined) {
    return h('p', {class: 'badge', id: 'quarantined'},
      `Quarantined: ${m.quarantine_reason}. Not served (451) until released.`);
  }
  const title = `${m.media_type}: ${m.original_name}`;
  switch (m.media_type) {
    case 'image':
      return h('a', {href: m.url, class: 'full'}, h('img', {src: m.url, alt: title, class: 'full'}));
    case 'video':
      return h('video', {src: m.url, controls: true, preload: 'metadata', id: 'player',
                         'aria-label': title});
    case 'audio':
      // The m4a variant first: every browser plays it (the original may be Opus, AMR…).
      return h('audio', {controls: true, preload: 'metadata', id: 'player', 'aria-label': title},
        m.variants?.m4a ? h('source', {src: m.variants.m4a.url, type: 'audio/mp4'}) : null,
        h('source', {src: m.url, type: m.mime_type}));
    default:
      if (m.mime_type === 'application/pdf') {
        return h('iframe', {src: m.url, title, class: 'pdf'});
      }
      return h('a', {href: m.url, download: m.original_name}, `Download ${m.original_name}`);
  }
}

function facts(m) {
  const dims = m.dimensions ? `${m.dimensions.width} × ${m.dimensions.height}` : null;
  const rows = [
    ['Name', m.original_name], ['Stored as', m.file_name],
    ['Type', `${m.media_type} (${m.mime_type})`], ['Size', `${bytes(m.file_size)} (${m.file_size} bytes)`],
    ['Dimensions', dims], ['Duration', m.duration !== null && m.duration !== undefined ? seconds(m.duration_exact ?? m.duration) : null],
    ['Message', h('a', {href: `#/message/${m.message_id}`}, String(m.message_id))],
    ['SHA-256', h('code', {class: 'hash'}, m.sha256)],
    ['Compressed', m.is_compressed ? `yes (quality ${m.compression_quality ?? '–'})` : 'no'],
    ['Sent to WhatsApp', m.zapi_sent ? `yes (${m.zapi_message_id})` : 'no'],
    // Only admin keys are told (the media JSON carries it only for them).
    ['Quarantined', m.quarantined ? `yes: ${m.quarantine_reason}` : (can.admin() ? 'no' : null)],
    ['Thumbnails', m.thumbnails?.length ? m.thumbnails.map(t => `${t.width}×${t.height} ${t.method}`).join(', ') : null],
    ['Variants', Object.keys(m.variants || {}).join(', ') || null],
    ['Added', when(m.created_at)], ['Changed', when(m.updated_at)],
  ];
  return h('dl', {class: 'facts'}, rows.filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** Who uploaded it and what happened to it: the audit log (admin keys only). */
async function history(m, uploader, box) {
  if (!can.admin()) return;
  const {entries} = await api(`/api/audit?media_id=${m.id}&limit=50`);
  const up = entries.filter(e => e.action === 'upload' || e.action === 'import_url'
                                 || e.action === 'legacy_import').pop();
  fill(uploader, up ? `${up.actor} (${when(up.at)}, from ${up.client_addr ?? 'unknown'})` : 'not recorded');
  fill(box, h('h2', {}, 'History'), table(entries, [
    ['at', 'When', when], ['actor', 'Who'], ['action', 'What'], ['outcome', 'Outcome']]));
}

async function sameContent(m, box) {
  const page = await api(`/api/media?sha256=${m.sha256}&limit=48`);
  const others = page.items.filter(o => o.id !== m.id);
  fill(box, h('h2', {}, 'The same content elsewhere'),
    others.length ? h('ul', {class: 'grid'}, others.map(tile))
                  : h('p', {class: 'muted'}, 'Shown nowhere else.'));
}

function deliveryRow(d) {
  return h('li', {'data-delivery': d.id}, `Delivery ${d.id}: `,
    h('strong', {class: 'delivery-state'}, d.state),
    d.whatsapp_status ? ` · WhatsApp: ${d.whatsapp_status}` : '',
    d.last_error ? ` · ${d.last_error}` : '', ` · attempts ${d.attempts ?? 0}`);
}

/** Polls a delivery until its state is final, updating its row in place. */
async function watch(id, list) {
  // Until final, or until the view is left (its list is no longer in the page).
  for (let i = 0; i < 150 && (i === 0 || list.isConnected); i++) {
    const d = await api(`/api/deliveries/${id}`);
    const old = list.querySelector(`[data-delivery="${id}"]`);
    const row = deliveryRow(d);
    if (old) old.replaceWith(row); else list.append(row);
    if (FINAL.has(d.state)) return;
    await new Promise(r => setTimeout(r, 2000));
  }
}

function sendForm(m, list) {
  const out = h('p', {role: 'status'});
  const form = h('form', {class: 'filters'},
    h('label', {}, 'Phone ', h('input', {name: 'phone', inputmode: 'tel', required: true,
      placeholder: '5511999999999'})),
    h('label', {}, 'Caption ', h('input', {name: 'caption'})),
    h('button', {type: 'submit'}, 'Send to WhatsApp'), out);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    try {
      const r = await api(`/api/media/${m.id}/send`, {method: 'POST',
        body: {phone: f.phone, ...(f.caption ? {caption: f.caption} : {})}});
      out.textContent = `Queued as delivery ${r.delivery_id}.`;
      await watch(r.delivery_id, list);
    } catch (err) {
      out.textContent = explain(err);
    }
  });
  return form;
}

function deleteButton(m, out) {
  const confirm = h('span', {hidden: true},
    h('span', {}, 'Delete this media for good? '),
    h('button', {type: 'button', class: 'danger', id: 'confirm-delete'}, 'Yes, delete'),
    h('button', {type: 'button', id: 'cancel-delete'}, 'Cancel'));
  const button = h('button', {type: 'button', class: 'danger', id: 'delete'}, 'Delete');
  button.addEventListener('click', () => { confirm.hidden = false; confirm.querySelector('button').focus(); });
  confirm.querySelector('#cancel-delete').addEventListener('click', () => { confirm.hidden = true; button.focus(); });
  confirm.querySelector('#confirm-delete').addEventListener('click', async () => {
    try {
      await api(`/api/media/${m.id}`, {method: 'DELETE'});
      location.hash = `#/message/${m.message_id}`;
    } catch (err) {
      out.textContent = explain(err);
    }
  });
  return h('span', {}, button, confirm);
}

export async function showMedia(view, id) {
  const m = await api(`/api/media/${id}`);
  const out = h('p', {role: 'alert', class: 'error'});
  const uploader = h('span', {}, can.admin() ? '…' : 'visible to admin keys');
  const actions = h('div', {class: 'actions'},
    can.write() ? deleteButton(m, out) : null,
    can.admin() ? quarantineControl(m, () => showMedia(view, m.id), out) : null);
  const deliveries = h('ul', {class: 'deliveries', 'aria-label': 'Deliveries'});
  const same = h('section'), hist = h('section');
  fill(view,
    h('h1', {}, m.original_name),
    h('div', {class: 'detail'},
      h('div', {class: 'viewer'}, viewer(m)),
      h('div', {}, facts(m), h('p', {}, 'Uploaded by: ', uploader), actions, out)),
    h('section', {}, h('h2', {}, 'WhatsApp'), deliveries, can.write() ? sendForm(m, deliveries) : null),
    same, hist);
  const list = await api(`/api/media/${id}/deliveries`);
  const items = Array.isArray(list) ? list : (list.items || list.deliveries || []);
  deliveries.append(...items.map(deliveryRow));
  await Promise.all([sameContent(m, same), history(m, uploader, hist)].map(
    p => p.catch(err => { out.textContent = explain(err); })));
}
