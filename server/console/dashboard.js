// The store's figures (GET /api/stats), growth per day drawn on a canvas, usage per
// key (GET /api/usage).

import {api} from './api.js';
import {bytes, fill, h, table} from './dom.js';
import {usagePanel} from './usage.js';

function card(label, value, id) {
  return h('div', {class: 'card', id}, h('span', {class: 'label'}, label), h('strong', {}, value));
}

/** Every day of the window, oldest first (days without uploads count zero). */
export function days(growth, n, today = new Date()) {
  const byDay = new Map(growth.map(g => [g.day, g]));
  const out = [];
  for (let i = n - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    const key = d.toISOString().slice(0, 10);
    out.push({day: key, files: byDay.get(key)?.files ?? 0, bytes: byDay.get(key)?.bytes ?? 0});
  }
  return out;
}

function chart(series) {
  const canvas = h('canvas', {width: 720, height: 220, id: 'growth-chart', role: 'img',
    'aria-label': `Bytes added per day over the last ${series.length} days`});
  const ctx = canvas.getContext('2d');
  const max = Math.max(1, ...series.map(s => s.bytes));
  const left = 70, bottom = 30, w = canvas.width - left - 10, hgt = canvas.height - bottom - 10;
  const style = getComputedStyle(document.documentElement);
  const ink = style.getPropertyValue('--ink').trim() || '#222';
  const accent = style.getPropertyValue('--accent').trim() || '#2563eb';
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = ink;
  ctx.strokeStyle = ink;
  ctx.beginPath();
  ctx.moveTo(left, 10); ctx.lineTo(left, 10 + hgt); ctx.lineTo(left + w, 10 + hgt);
  ctx.stroke();
  ctx.textAlign = 'right';
  ctx.fillText(bytes(max), left - 6, 16);
  ctx.fillText('0', left - 6, 10 + hgt);
  const step = w / series.length;
  ctx.fillStyle = accent;
  series.forEach((s, i) => {
    const bh = hgt * s.bytes / max;
    ctx.fillRect(left + i * step + 1, 10 + hgt - bh, Math.max(1, step - 2), bh);
  });
  ctx.fillStyle = ink;
  ctx.textAlign = 'center';
  const every = Math.ceil(series.length / 6);
  series.forEach((s, i) => {
    if (i % every === 0 || i === series.length - 1) {
      ctx.fillText(s.day.slice(5), left + (i + 0.5) * step, canvas.height - 10);
    }
  });
  return canvas;
}

function storage(stats) {
  if (stats.storage) {
    const s = stats.storage;
    return h('div', {class: 'cards'},
      card('Logical bytes', bytes(s.logical_bytes), 'logical-bytes'),
      card('Stored bytes', bytes(s.stored_bytes), 'stored-bytes'),
      card('Saved by dedup', bytes(s.dedup_saved_bytes)),
      card('Contents', String(s.contents)));
  }
  const types = Object.values(stats.media_by_type || {});
  const sum = key => types.reduce((a, t) => a + (t[key] || 0), 0);
  return h('div', {class: 'cards'},
    card('Logical bytes', bytes(sum('bytes')), 'logical-bytes'),
    card('Stored (base64) bytes', bytes(sum('stored_bytes')), 'stored-bytes'),
    card('Chunk table on disk', bytes(stats.chunk_table_bytes)));
}

export async function showDashboard(view) {
  const stats = await api('/api/stats?days=30');
  const types = Object.entries(stats.media_by_type || {}).map(([type, t]) => ({type, ...t}));
  const series = days(stats.growth || [], stats.growth_days || 30);
  const usageBox = h('section', {id: 'usage'});
  fill(view,
    h('h1', {}, 'Dashboard'),
    h('div', {class: 'cards'},
      card('Messages with media', `${stats.messages_with_media} / ${stats.messages}`),
      card('Uploads in progress', `${stats.uploads_in_progress.count} (${bytes(stats.uploads_in_progress.bytes)})`, 'uploads-in-progress'),
      card('Deliveries pending', String(stats.zapi.pending), 'deliveries-pending'),
      card('Deliveries failed or unknown', String(stats.zapi.failed_or_unknown), 'deliveries-failed'),
      card('Sent to WhatsApp', String(stats.zapi.sent))),
    h('h2', {}, 'Storage'), storage(stats),
    h('h2', {}, 'Media by type'),
    table(types, [['type', 'Type'], ['count', 'Files'], ['bytes', 'Bytes', bytes],
                  ['stored_bytes', 'Stored', bytes]]),
    h('h2', {}, 'Growth per day'), chart(series),
    h('details', {}, h('summary', {}, 'The figures'),
      table(series.slice().reverse(), [['day', 'Day'], ['files', 'Files'], ['bytes', 'Bytes', bytes]])),
    usageBox);
  await usagePanel(usageBox);
}
