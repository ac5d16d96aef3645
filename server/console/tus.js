// A small tus 1.0 client (creation, PATCH at the offset, HEAD to resume) over
// XMLHttpRequest, the only browser API that reports upload progress.
//
// A failed PATCH (the connection cut, a 5xx, 423 locked, 409 offset mismatch) puts the
// upload in the "resuming" state: after a short wait it asks the server with HEAD how
// much arrived (the server keeps every byte that came) and goes on from there.

import {authHeaders} from './api.js';

const TUS = {'Tus-Resumable': '1.0.0'};
export const CHUNK_BYTES = 1024 * 1024;
const MAX_FAILURES = 8;       // in a row, without progress in between
const RETRYABLE = new Set([0, 409, 423, 429, 500, 502, 503, 504]);

function b64(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/** One request; resolves with {status, header(name), body}, status 0 when cut off. */
function request(method, url, headers, body, onProgress) {
  return new Promise(resolve => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    if (onProgress) xhr.upload.onprogress = e => onProgress(e.loaded);
    const done = () => resolve({status: xhr.status, body: xhr.responseText,
                                header: name => xhr.getResponseHeader(name)});
    xhr.onload = done;
    xhr.onerror = done;      // status 0: the connection failed or was cut
    xhr.ontimeout = done;
    xhr.onabort = done;
    xhr.send(body ?? null);
  });
}

function message(resp) {
  try {
    const data = JSON.parse(resp.body);
    return data.message || data.error;
  } catch {
    return resp.status ? `the server answered ${resp.status}` : 'the connection failed';
  }
}

export class TusUpload {
  /** ``events``: onProgress(sent, total), onState(state, detail): states are
   *  "creating", "uploading", "resuming", "done" (detail: media id), "failed" (detail:
   *  the reason in words). */
  constructor(file, messageId, events, {chunkBytes = CHUNK_BYTES, endpoint = '/api/media/tus/'} = {}) {
    Object.assign(this, {file, messageId, events, chunkBytes, endpoint});
    this.url = null;
    this.offset = 0;
    this.failures = 0;
  }

  async start() {
    try {
      this.events.onState('creating');
      await this.create();
      while (this.mediaId === undefined) {
        await this.patch();
      }
      this.events.onProgress(this.file.size, this.file.size);
      this.events.onState('done', this.mediaId);
    } catch (e) {
      this.events.onState('failed', e.message);
    }
    return this.mediaId;
  }

  async create() {
    const meta = [['message_id', String(this.messageId)], ['filename', this.file.name],
                  ['filetype', this.file.type || 'application/octet-stream']]
      .map(([k, v]) => `${k} ${b64(v)}`).join(',');
    for (;;) {
      const resp = await request('POST', this.endpoint, authHeaders({
        ...TUS, 'Upload-Length': String(this.file.size), 'Upload-Metadata': meta}));
      if (resp.status === 201) {
        this.url = resp.header('Location');
        return;
      }
      await this.failed(resp);
    }
  }

  async patch() {
    const end = Math.min(this.offset + this.chunkBytes, this.file.size);
    const start = this.offset;
    this.events.onState(this.failures ? 'resuming' : 'uploading');
    const resp = await request('PATCH', this.url, authHeaders({
      ...TUS, 'Upload-Offset': String(start),
      'Content-Type': 'application/offset+octet-stream'}),
      this.file.slice(start, end),
      sent => this.events.onProgress(start + sent, this.file.size));
    if (resp.status === 204) {
      this.failures = 0;
      this.offset = Number(resp.header('Upload-Offset'));
      this.events.onProgress(this.offset, this.file.size);
      this.noteMedia(resp);
      return;
    }
    await this.failed(resp);
    await this.resume();
  }

  /** HEAD: where the server stands (what arrived before the cut). */
  async resume() {
    for (;;) {
      const resp = await request('HEAD', this.url, authHeaders(TUS));
      if (resp.status === 200 || resp.status === 204) {
        this.offset = Number(resp.header('Upload-Offset'));
        this.events.onProgress(this.offset, this.file.size);
        this.noteMedia(resp);
        return;
      }
      await this.failed(resp);
    }
  }

  noteMedia(resp) {
    const id = resp.header('Media-Id');
    if (id) this.mediaId = Number(id);
  }

  /** A failure: wait and let the caller retry, or give up with the reason in words. */
  async failed(resp) {
    if (!RETRYABLE.has(resp.status) || ++this.failures > MAX_FAILURES) {
      throw new Error(message(resp));
    }
    this.events.onState('resuming', resp.status ? `the server answered ${resp.status}`
                                                : 'the connection was cut');
    const wait = Math.min(500 * 2 ** (this.failures - 1), 8000);
    await new Promise(r => setTimeout(r, Number(resp.header('Retry-After')) * 1000 || wait));
  }
}
