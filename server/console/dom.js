// Building the page from elements and text nodes only: every text the API returns (file names,
// audit rows) goes in as text, never as markup.

/** h('a', {href: '#'}, 'text', child...): an element; attributes starting with "on"
 *  are listeners; null/false children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'text') el.textContent = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace what ``el`` holds. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat(Infinity)) if (child) el.append(child);
  return el;
}

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

export function seconds(s) {
  if (s === null || s === undefined) return '–';
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m ? `${m} min ${r} s` : `${Number(s).toFixed(1)} s`;
}

/** A table from rows of objects: ``columns`` [[key, label, format?]...]. */
export function table(rows, columns, caption) {
  return h('div', {class: 'scroll'}, h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map(([, label]) => h('th', {scope: 'col'}, label)))),
    h('tbody', {}, rows.map(r => h('tr', {}, columns.map(([key, , fmt]) =>
      h('td', {}, fmt ? fmt(r[key], r) : (r[key] ?? '–'))))))));
}
