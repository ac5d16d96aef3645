"""Real tus clients against the server: tuspy (Python) and tus-js-client (Node), each
interrupted mid-PATCH and resumed on a second server instance."""
import asyncio
import collections
import hashlib
import json
import pathlib
import shutil
import uuid

import asyncpg
import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.storage import filestorage

from tests.media import jpeg_bytes


class CuttingProxy:
    """A loopback TCP proxy standing for a load balancer: forwards to ``target``
    (switchable), and drops every connection once ``budget`` bytes have gone upstream
    in total (a phone losing signal mid-PATCH)."""

    def __init__(self, target: tuple[str, int], budget: int | None):
        self.target, self.budget = target, budget
        self.server: asyncio.base_events.Server | None = None
        self.sent = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _conn(self, cr, cw):
        sr, sw = await asyncio.open_connection(*self.target)

        async def up():
            while data := await cr.read(4096):
                if self.budget is not None:
                    data = data[:max(0, self.budget - self.sent)]
                self.sent += len(data)
                sw.write(data)
                await sw.drain()
                # Cut as soon as the budget is spent, not at the next read: when the
                # read that spent it was a PATCH's last, the client waits for an answer
                # and sends nothing more, and nothing would ever be cut.
                if self.budget is not None and self.sent >= self.budget:
                    break
            for w in (sw, cw):
                w.close()

        async def down():
            while data := await sr.read(65536):
                cw.write(data)
                await cw.drain()
            cw.close()

        await asyncio.gather(up(), down(), return_exceptions=True)


async def _wait_unlocked(client, url: str, auth: dict, dsn: str) -> None:
    """Wait until the first server has noticed the dropped connection, stored what
    arrived and let go of the upload's lease. A HEAD answers during a PATCH, so it
    cannot tell; an empty PATCH at the current offset takes the lease (204) or is
    refused while another request holds it (423), or while the offset still moves
    (409); it must also find no request still running, the cut-off one included."""
    tus = {"Tus-Resumable": "1.0.0", **auth}
    # What was seen, for a failure to say which way it failed (once, in a full run, it
    # did, and the message alone could not tell): HEAD's offset and status, the
    # PATCH's status and answer.
    seen: collections.Counter = collections.Counter()
    for _ in range(200):
        r = await client.head(url, headers=tus)
        if r.status == 200:
            p = await client.patch(url, data=b"", headers={
                **tus, "Upload-Offset": r.headers["Upload-Offset"],
                "Content-Type": "application/offset+octet-stream"})
            if p.status == 204:
                # The empty PATCH may also have come before the cut-off one took the
                # lease (its handler slow to start, under load), which would take it
                # later, against the resumed upload: done once no handler runs (the
                # servers run in this event loop).
                if not (running := _handlers()):
                    return
                seen[(r.headers["Upload-Offset"], 204, f"{len(running)} handlers")] += 1
                await asyncio.sleep(0.1)
                continue
            text = await p.text()
            assert p.status in (409, 423), (p.status, text)
            seen[(r.headers["Upload-Offset"], p.status, text)] += 1
        else:
            seen[("HEAD", r.status, await r.text())] += 1
        await asyncio.sleep(0.1)
    raise AssertionError("the interrupted PATCH still holds the upload after 20 s; "
                         f"(offset, status, answer) seen: {dict(seen)}; "
                         f"{await _why_locked(dsn, url)}")


async def _why_locked(dsn: str, url: str) -> str:
    """For a failure of _wait_unlocked: what holds the upload. 423 comes both from a
    lease held (tus_lock) and from a save that found its lease gone (tus_save), so the
    row says which; the database sessions say whether a statement waits on a lock or a
    transaction stays open; the request handlers of this process say where they wait
    (the servers run in this event loop)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT t.lock_id IS NOT NULL AS held, t.lock_until - now() AS lease_left, "
            "f.upload_state, f.file_size, length(t.tail) AS tail FROM tus_uploads t "
            "JOIN media_files f ON f.id = t.media_id WHERE t.id = $1",
            uuid.UUID(url.rsplit("/", 1)[1]))
        sessions = await conn.fetch(
            "SELECT state, wait_event_type, wait_event, now() - xact_start AS xact_age, "
            "left(query, 80) AS query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()
    return (f"upload row: {dict(row) if row else None}; sessions: "
            f"{[dict(r) for r in sessions if r['state'] != 'idle']}; "
            f"handlers: {_handlers()}")


def _handlers() -> list[str]:
    """The await chain of every request handler running in this process (the test's
    servers; its own requests have been answered when this is asked)."""
    chains = []
    for task in asyncio.all_tasks():
        chain, coro = [], task.get_coro()
        while (frame := getattr(coro, "cr_frame", None)) is not None:
            chain.append(f"{pathlib.Path(frame.f_code.co_filename).name}:"
                         f"{frame.f_lineno} {frame.f_code.co_name}")
            coro = coro.cr_await
        if any(c.endswith(" _handle_request") for c in chain):
            chains.append(" > ".join(chain))
    return chains


async def test_tuspy_interrupted_then_resumed_on_another_instance(
        server_for, admin_key, message_id, tmp_path, db_dsn):
    a = await server_for()
    b = await server_for()   # a second instance on the same database
    data = jpeg_bytes(60_000)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    proxy = CuttingProxy((a.server.host, a.server.port), budget=25_000)
    port = await proxy.start()
    auth = {"Authorization": f"Bearer {admin_key}"}
    storage = filestorage.FileStorage(str(tmp_path / "urls.json"))

    def uploader():
        c = tus_client.TusClient(f"http://127.0.0.1:{port}/api/media/tus/", headers=auth)
        return c.uploader(str(path), chunk_size=7000, store_url=True, url_storage=storage,
                          metadata={"message_id": str(message_id), "filename": "photo.jpg"})

    first = await asyncio.to_thread(uploader)
    with pytest.raises((TusUploadFailed, TusCommunicationError)):
        await asyncio.to_thread(first.upload)
    stopped_at = first.offset
    assert 0 < stopped_at < len(data)
    url_path = "/api/media/tus/" + first.url.rsplit("/", 1)[1]
    await _wait_unlocked(a, url_path, {}, db_dsn)
    kept = int((await a.head(url_path, headers={"Tus-Resumable": "1.0.0"}))
               .headers["Upload-Offset"])
    assert kept >= stopped_at   # the cut-off PATCH kept what reached the server

    proxy.target, proxy.budget = (b.server.host, b.server.port), None
    second = await asyncio.to_thread(uploader)   # finds its URL in the storage
    assert second.url == first.url and second.offset == kept
    await asyncio.to_thread(second.upload)

    r = await b.head(url_path, headers={"Tus-Resumable": "1.0.0"})
    media_id = r.headers["Media-Id"]
    body = await (await b.get(f"/api/media/serve/{media_id}")).read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    assert body == data
    await proxy.close()


async def test_tuspy_with_checksums(client, admin_key, message_id, tmp_path):
    data = jpeg_bytes(30_000)
    path = tmp_path / "c.jpg"
    path.write_bytes(data)
    c = tus_client.TusClient(
        f"http://{client.server.host}:{client.server.port}/api/media/tus/",
        headers={"Authorization": f"Bearer {admin_key}"})
    up = c.uploader(str(path), chunk_size=4096, upload_checksum=True,
                    metadata={"message_id": str(message_id)})
    await asyncio.to_thread(up.upload)
    url_path = "/api/media/tus/" + up.url.rsplit("/", 1)[1]
    r = await client.head(url_path, headers={"Tus-Resumable": "1.0.0"})
    body = await (await client.get(f"/api/media/serve/{r.headers['Media-Id']}")).read()
    assert body == data


NODE_DIR = pathlib.Path(__file__).resolve().parent.parent / "node"


def _node_skip_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "tus-js-client").is_dir():
        return ("tus-js-client is not installed: npm install --prefix tests/node "
                "(.ci/run does, best effort)")
    return None


async def _node(*args: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "tus_upload.js"), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.mark.skipif(_node_skip_reason() is not None, reason=str(_node_skip_reason()))
async def test_tus_js_client_interrupted_then_resumed(server_for, admin_key, message_id,
                                                      tmp_path, db_dsn):
    a = await server_for()
    b = await server_for()
    data = jpeg_bytes(50_000)
    path = tmp_path / "js.jpg"
    path.write_bytes(data)
    proxy = CuttingProxy((a.server.host, a.server.port), budget=20_000)
    port = await proxy.start()
    endpoint = f"http://127.0.0.1:{port}/api/media/tus/"
    first = await _node(endpoint, str(path), admin_key, str(message_id))
    assert "error" in first and first["url"], first
    url_path = "/api/media/tus/" + first["url"].rsplit("/", 1)[1]
    await _wait_unlocked(a, url_path, {}, db_dsn)
    kept = int((await a.head(url_path, headers={"Tus-Resumable": "1.0.0"}))
               .headers["Upload-Offset"])
    assert 0 < kept < len(data)

    proxy.target, proxy.budget = (b.server.host, b.server.port), None
    second = await _node(endpoint, str(path), admin_key, str(message_id), first["url"])
    assert second == {"url": first["url"], "done": True}
    r = await b.head(url_path, headers={"Tus-Resumable": "1.0.0"})
    body = await (await b.get(f"/api/media/serve/{r.headers['Media-Id']}")).read()
    assert body == data
    await proxy.close()
