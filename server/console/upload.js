// Uploads onto a message: drop files on the zone (or choose them), each goes through
// tus with its own progress bar and state; a cut connection resumes where it stopped.

import {bytes, h} from './dom.js';
import {TusUpload} from './tus.js';

const WORDS = {
  creating: 'starting…', uploading: 'uploading', resuming: 'resuming',
  done: 'done', failed: 'failed',
};

function uploadRow(file, messageId, onDone) {
  const bar = h('progress', {max: file.size || 1, value: 0,
                             'aria-label': `Progress of ${file.name}`});
  const state = h('span', {class: 'state', 'data-state': 'creating'}, WORDS.creating);
  const note = h('span', {class: 'note'});
  const row = h('li', {class: 'upload', 'data-file': file.name},
    h('span', {class: 'name'}, `${file.name} (${bytes(file.size)})`), bar, state, note);
  const upload = new TusUpload(file, messageId, {
    onProgress(sent) { bar.value = sent; },
    onState(s, detail) {
      state.dataset.state = s;
      state.textContent = s === 'uploading'
        ? `${WORDS[s]} ${Math.floor(100 * bar.value / (file.size || 1))}%` : WORDS[s];
      if (s === 'resuming') {
        row.classList.add('resumed');
        note.textContent = `Interrupted (${detail || 'retrying'}); resuming from what the server kept.`;
      }
      if (s === 'done') {
        note.replaceChildren(h('a', {href: `#/media/${detail}`}, `media ${detail}`),
          row.classList.contains('resumed') ? ' (resumed after an interruption)' : '');
        onDone();
      }
      if (s === 'failed') note.textContent = detail;
    },
  });
  return {row, upload};
}

/** The drop zone for ``messageId``; ``onDone`` runs after each finished upload. */
export function uploadZone(messageId, onDone) {
  const input = h('input', {type: 'file', multiple: true, class: 'visually-hidden',
                            id: 'upload-input', tabindex: '-1'});
  const choose = h('button', {type: 'button'}, 'Choose files…');
  const list = h('ul', {class: 'uploads', 'aria-label': 'Uploads', 'aria-live': 'polite'});
  const zone = h('section', {class: 'dropzone', 'aria-label': `Upload to message ${messageId}`},
    h('p', {}, `Drop files here to add them to message ${messageId}, or `), choose, input, list);
  function start(files) {
    for (const file of files) {
      const {row, upload} = uploadRow(file, messageId, onDone);
      list.append(row);
      upload.start();
    }
  }
  choose.addEventListener('click', () => input.click());
  input.addEventListener('change', () => { start([...input.files]); input.value = ''; });
  zone.addEventListener('dragover', e => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', e => {
    e.preventDefault();
    zone.classList.remove('over');
    start([...e.dataTransfer.files]);
  });
  return zone;
}
