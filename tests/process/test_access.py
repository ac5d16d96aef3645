"""Access control through a real server: API keys and scopes on every route, 401 vs
403, revocation, malformed credentials, /healthz, /readyz and /metrics, and routes
nobody declared."""
from __future__ import annotations

import pytest
from aiohttp import web

from tests.dbutil import bearer, fetchval
from tests.media import png_bytes

UPLOAD = "/api/media/upload-production"


async def upload(client, message_id: int, **params) -> dict:
    resp = await client.post(UPLOAD, params={"message_id": str(message_id), **params},
                             data=png_bytes(), headers={"Content-Type": "image/png"})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def assert_error(resp, status: int, code: str) -> None:
    assert resp.status == status, await resp.text()
    if resp.method != "HEAD":
        assert (await resp.json())["error"] == code
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="media-store"')
    else:
        assert "WWW-Authenticate" not in resp.headers


# (method, path template, the scope it needs). {m}: a media id, {msg}: a message id.
ROUTES = [
    ("GET", "/api/media/{m}", "read"),
    ("GET", "/api/messages/{msg}/media", "read"),
    ("GET", "/api/media/serve/{m}", "read"),
    ("HEAD", "/api/media/serve/{m}", "read"),
    ("GET", "/api/media?message_id={msg}", "read"),
    ("POST", UPLOAD + "?message_id={msg}", "write"),
    ("POST", "/api/media/upload-tokens", "write"),
    ("DELETE", "/api/media/{m}", "write"),
    ("GET", "/api/audit", "admin"),
]
RANK = {"read": 1, "write": 2, "admin": 3}


async def call(client, method: str, path: str, meta: dict, headers=None):
    url = path.format(m=meta["id"], msg=meta["message_id"], name=meta["file_name"])
    kwargs = {}
    if method == "POST" and "upload-tokens" in url:
        kwargs["json"] = {"message_id": meta["message_id"]}
    elif method == "POST":
        kwargs["data"], headers = png_bytes(), {**(headers or {}), "Content-Type": "image/png"}
    return await client.request(method, url, headers=headers, allow_redirects=False,
                                **kwargs)


@pytest.mark.parametrize("method,path,needed", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_each_route_by_scope(client, anon_client, key_for, message_id, method, path,
                                   needed):
    for held in ("read", "write", "admin"):
        meta = await upload(client, message_id)   # a fresh file: DELETE removes it
        resp = await call(anon_client, method, path, meta,
                          headers=bearer(await key_for(held)))
        if RANK[held] >= RANK[needed]:
            assert resp.status < 400, (held, resp.status, await resp.text())
        else:
            await assert_error(resp, 403, "forbidden")
    meta = await upload(client, message_id)
    await assert_error(await call(anon_client, method, path, meta), 401, "unauthorized")
    wrong = "msk_" + "A" * 43
    await assert_error(await call(anon_client, method, path, meta, headers=bearer(wrong)),
                       401, "invalid_credentials")


async def test_revoked_key_stops_at_once(client, anon_client, key_for, message_id, db_dsn):
    from tests.procs import run_cli
    key = await key_for("read", "phone-backend")
    meta = await upload(client, message_id)
    assert (await anon_client.get(f"/api/media/{meta['id']}", headers=bearer(key))).status == 200
    res = run_cli(["keys", "revoke", "phone-backend"], {"DATABASE_URL": db_dsn})
    assert res.returncode == 0, res.stderr
    resp = await anon_client.get(f"/api/media/{meta['id']}", headers=bearer(key))
    await assert_error(resp, 401, "invalid_credentials")
    assert await fetchval(db_dsn, "SELECT actor FROM media_audit_log "
                                  "WHERE action = 'access_denied' ORDER BY id DESC LIMIT 1"
                          ) == "phone-backend"


BAD_HEADERS = [
    "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b",
    "Bearer " + "A" * 8000, "Bearer msk_" + "A" * 42, "Bearer msk_" + "A" * 44,
    "Bearer mut.", "Bearer mut.1.2.3.4", "Bearer mut." + "9" * 100, "Bearer ~~~",
    "bearer msk_" + "!" * 43,
]


@pytest.mark.parametrize("header", BAD_HEADERS, ids=range(len(BAD_HEADERS)))
async def test_malformed_credentials_are_401_never_500(anon_client, message_id, header):
    for path in ("/api/media/1", f"{UPLOAD}?message_id={message_id}"):
        resp = await anon_client.post(path, headers={"Authorization": header}) \
            if path.startswith(UPLOAD) else \
            await anon_client.get(path, headers={"Authorization": header})
        await assert_error(resp, 401, "invalid_credentials")


async def test_non_ascii_and_raw_bytes_in_credentials_are_401(client, message_id):
    import asyncio
    for raw in ("Bearer clé-secrète".encode(), b"Bearer \xff\xfe\x00\x01",
                b"Bearer msk_" + "é".encode() * 43):
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(b"GET /api/media/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Authorization: " + raw + b"\r\n\r\n")
        head = await reader.read()
        writer.close()
        assert head.split(b" ", 2)[1] in (b"400", b"401"), head[:200]


async def test_health_is_open_and_metrics_by_address(client, anon_client, client_with):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await anon_client.get(path)).status == 200, path   # from 127.0.0.1
    import ipaddress
    elsewhere = await client_with(security__metrics_allow=(ipaddress.ip_network("192.0.2.0/24"),))
    await assert_error(await elsewhere.get("/metrics"), 403, "address_not_allowed")
    assert (await elsewhere.get("/healthz")).status == 200


async def test_metrics_address_comes_from_a_trusted_proxy_only(client_with):
    import ipaddress
    c = await client_with(security__metrics_allow=(ipaddress.ip_network("192.0.2.0/24"),),
                          security__trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    assert (await c.get("/metrics", headers={"X-Forwarded-For": "192.0.2.5"})).status == 200
    await assert_error(await c.get("/metrics", headers={"X-Forwarded-For": "198.51.100.1"}),
                       403, "address_not_allowed")


async def test_a_route_nobody_declared_needs_admin(server_for, key_for):
    async def forgotten(request):
        return web.json_response({"secret": True})

    def setup(app: web.Application) -> None:
        app.router.add_get("/api/new-feature", forgotten)
        app.router.add_get("/elsewhere", forgotten)

    c = await server_for(setup=setup, key=None)
    for path in ("/api/new-feature", "/elsewhere"):
        await assert_error(await c.get(path), 401, "unauthorized")
        await assert_error(await c.get(path, headers=bearer(await key_for("write"))),
                           403, "forbidden")
        assert (await c.get(path, headers=bearer(await key_for("admin")))).status == 200


async def test_handlers_see_the_principal(server_for, key_for):
    from server.security import PRINCIPAL, READ, add

    async def principal(request):
        p = request[PRINCIPAL]
        return web.json_response({"name": p.name, "kind": p.kind, "scope": p.scope})

    # A path of the test's own: /api/whoami is the service's (the console's) now.
    c = await server_for(setup=lambda app: add(app, "GET", "/api/test/principal", principal,
                                               scope=READ), key=None)
    resp = await c.get("/api/test/principal", headers=bearer(await key_for("write", "backend")))
    assert await resp.json() == {"name": "backend", "kind": "key", "scope": "write"}


async def test_key_last_used_is_recorded(client, db_dsn):
    assert await fetchval(db_dsn, "SELECT last_used_at FROM api_keys WHERE name = 'test-admin'"
                          ) is None
    assert (await client.get("/api/audit")).status == 200
    assert await fetchval(db_dsn, "SELECT last_used_at IS NOT NULL FROM api_keys "
                                  "WHERE name = 'test-admin'")


async def test_only_the_hash_of_a_key_is_stored(admin_key, db_dsn):
    import hashlib
    stored = await fetchval(db_dsn, "SELECT key_hash FROM api_keys WHERE name = 'test-admin'")
    assert stored == hashlib.sha256(admin_key.encode()).digest()
    assert await fetchval(db_dsn, "SELECT count(*) FROM api_keys WHERE "
                                  "position($1 in key_hash::text) > 0", admin_key) == 0


async def test_expect_continue_without_any_credential_is_refused_before_the_body(
        anon_client, client, message_id):
    import asyncio
    for auth, first in [("", b"HTTP/1.1 401"),
                        (f"Authorization: Bearer {'msk_' + 'Q' * 43}\r\n", b"HTTP/1.1 100")]:
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write((f"POST {UPLOAD}?message_id={message_id} HTTP/1.1\r\nHost: x\r\n"
                      f"{auth}Content-Type: image/png\r\nContent-Length: 1000000\r\n"
                      "Expect: 100-continue\r\n\r\n").encode())
        await writer.drain()
        # With some credential the body is asked for, and the key then checked (401).
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(first)
        writer.close()
