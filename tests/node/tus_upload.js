// One tus-js-client upload, driven by tests/process/test_tus_clients.py:
//   node tus_upload.js <endpoint> <file> <key> <message_id> [upload_url]
// With upload_url it resumes that upload (HEAD, then PATCH from the offset). Prints one
// JSON line: {"url": ..., "done": true} or {"url": ..., "error": "..."}.
const fs = require("fs");
const tus = require("tus-js-client");

const [endpoint, file, key, messageId, uploadUrl] = process.argv.slice(2);
const data = fs.readFileSync(file);
const upload = new tus.Upload(data, {
  endpoint,
  uploadUrl: uploadUrl || null,
  chunkSize: 6000,
  retryDelays: null,
  headers: { Authorization: `Bearer ${key}` },
  metadata: { message_id: messageId, filename: "js.jpg" },
  onError(err) {
    console.log(JSON.stringify({ url: upload.url, error: String(err) }));
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, done: true }));
  },
});
upload.start();
