"""import-legacy through media processing: facts and previews with the bytes kept, and
--process (compressed, stripped) told apart from damage by verify, cleanup and re-runs."""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io

import pybase64
import pytest
from PIL import Image

from server.legacy.cleanup import DELETED, KEPT, WOULD_DELETE, cleanup
from server.legacy.importer import ALREADY, CHANGED, FAILED, IMPORTED, import_policy
from server.legacy.manifest import HEADER, read_manifest
from server.legacy.verify import verify
from server.processing.detect import identify
from server.processing.pipeline import may_rewrite
from server.processing.policy import Options, image_plan
from tests.legacy_util import Chat, chat_shape, policy, run_import
from tests.media import GPS_IFD, av_sample, exif_photo, heic_bytes, png_bomb
from tests.procs import run_cli


# -- the policy an import runs (pure) ------------------------------------------------

@pytest.mark.parametrize("process, compress, keep_metadata, keep_bytes", [
    (False, False, True, True),     # facts and previews only: the bytes are the file's
    (True, True, False, False),     # what a new upload gets (the server's settings)
])
def test_import_policy(process, compress, keep_metadata, keep_bytes):
    server = policy()
    got = import_policy(server, process)
    assert (got.compress, got.keep_metadata, got.keep_bytes) == (
        compress, keep_metadata, keep_bytes)
    # Everything else (types, limits, pixels, pool size) is the server's.
    same = ("enabled", "allowed", "max_bytes", "max_pixels", "concurrency", "quality")
    assert {f: getattr(got, f) for f in same} == {f: getattr(server, f) for f in same}


@pytest.mark.parametrize("options", [Options(), Options(compress=True),
                                     Options(quality=40)])
@pytest.mark.parametrize("mime", ["image/jpeg", "image/heic", "image/tiff"])
def test_keeping_bytes_nothing_may_rewrite_an_image(options, mime):
    plan = image_plan(import_policy(policy(), False), options)
    assert (plan.compress, plan.keep_metadata, plan.keep_bytes) == (False, True, True)
    kind = dataclasses.replace(identify(b"\xff\xd8\xff\xe0", complete=False),
                               mime_type=mime, media_type="image")
    assert not may_rewrite(kind, plan)
    # The server's own policy would rewrite them (so the test above means something).
    assert may_rewrite(kind, image_plan(policy(), options))


# -- a folder of real media ----------------------------------------------------------

def _media_chat_files() -> dict[str, bytes]:
    return {
        "photo.jpg": exif_photo(240, 160, orientation=6),   # sideways, GPS, camera make
        "iphone.heic": heic_bytes(96, 64),
        "bomb.png": png_bomb(),                             # 50000x50000 pixels claimed
        "cut.jpg": exif_photo(240, 160)[:3000],             # truncated mid-scan
    }


async def _media_chat(pool, tmp_path, files: dict[str, bytes]) -> Chat:
    folder = tmp_path / "uploads-media"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    messages = {}
    async with pool.acquire() as conn:
        await chat_shape(conn)
        for name in files:
            messages[name] = await conn.fetchval(
                "INSERT INTO messages (media_url) VALUES ($1) RETURNING id",
                f"/uploads/media/{name}")
    return Chat(folder, files, messages)


@pytest.fixture
async def media_chat(pool, tmp_path):
    return await _media_chat(pool, tmp_path, _media_chat_files())


async def _stored(store, media_id: int) -> bytes:
    rec = await store.stat(media_id)
    return b"".join([p async for p in store.read(rec, 0, rec.file_size - 1)])


async def _map(pool) -> dict[str, dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT legacy_name, media_id, sha256, file_size, "
                                "processed, stored_sha256 FROM legacy_media")
    return {r["legacy_name"]: dict(r) for r in rows}


def _rows(report) -> dict:
    return {r.name: r for r in report.rows}


async def test_without_process_the_bytes_are_kept_with_facts_and_previews(
        store, pool, media_chat):
    report, out = await run_import(store, media_chat)
    rows = _rows(report)
    assert {n: r.outcome for n, r in rows.items()} == {
        "photo.jpg": IMPORTED, "iphone.heic": IMPORTED, "bomb.png": FAILED,
        "cut.jpg": FAILED}
    # Refused by processing as an upload would be, named, and the run went on.
    assert rows["bomb.png"].reason.startswith("media_too_complex")
    assert rows["cut.jpg"].reason.startswith("invalid_media")
    assert "failed: bomb.png: media_too_complex" in out
    assert not report.ok
    photo = await store.stat(rows["photo.jpg"].media_id)
    # Byte for byte, EXIF and GPS included: the sha256 is the file's.
    assert await _stored(store, photo.id) == media_chat.files["photo.jpg"]
    assert photo.sha256 == media_chat.sha("photo.jpg") == rows["photo.jpg"].stored_sha256
    assert photo.dimensions == {"width": 160, "height": 240}    # as displayed (rotated)
    assert "preview" in photo.variants and not photo.is_compressed
    heic = await store.stat(rows["iphone.heic"].media_id)
    assert heic.mime_type == "image/heic"                       # not converted to JPEG
    assert await _stored(store, heic.id) == media_chat.files["iphone.heic"]
    assert heic.dimensions == {"width": 96, "height": 64} and "preview" in heic.variants
    m = await _map(pool)
    assert set(m) == {"photo.jpg", "iphone.heic"}
    assert all(not r["processed"] and r["stored_sha256"] == r["sha256"] for r in m.values())
    async with pool.acquire() as conn:   # nothing of the refused files is left behind
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 2


async def test_without_process_audio_and_video_get_their_duration(store, pool, tmp_path):
    files = {"clip.mp4": av_sample("mp4", video="h264", seconds=2.0),
             "voice.ogg": av_sample("ogg", audio="libopus", seconds=1.5)}
    chat = await _media_chat(pool, tmp_path, files)
    report, _ = await run_import(store, chat)
    rows = _rows(report)
    assert all(r.outcome == IMPORTED for r in rows.values()), report.summary()
    clip = await store.stat(rows["clip.mp4"].media_id)
    assert clip.duration == 2 and clip.dimensions == {"width": 64, "height": 48}
    assert "preview" in clip.variants
    assert await _stored(store, clip.id) == files["clip.mp4"]
    voice = await store.stat(rows["voice.ogg"].media_id)
    assert voice.duration_exact == pytest.approx(1.5, abs=0.1) and voice.waveform
    assert await _stored(store, voice.id) == files["voice.ogg"]


@pytest.fixture
async def processed(store, pool, media_chat):
    report, _ = await run_import(store, media_chat, process=True)
    return media_chat, _rows(report)


async def test_process_strips_exif_and_records_both_hashes(store, pool, processed):
    chat, rows = processed
    assert rows["photo.jpg"].outcome == IMPORTED and rows["iphone.heic"].outcome == IMPORTED
    assert rows["bomb.png"].outcome == FAILED and rows["cut.jpg"].outcome == FAILED
    photo = await store.stat(rows["photo.jpg"].media_id)
    data = await _stored(store, photo.id)
    assert data != chat.files["photo.jpg"] and photo.sha256 == hashlib.sha256(data).digest()
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        assert GPS_IFD not in exif and not exif.get_ifd(GPS_IFD)   # no location
        assert 0x010F not in exif                                  # no camera make
        assert b"secret comment" not in data
    heic = await store.stat(rows["iphone.heic"].media_id)
    assert heic.mime_type == "image/jpeg"                          # as an upload gets it
    m = await _map(pool)
    for name in ("photo.jpg", "iphone.heic"):
        rec = await store.stat(m[name]["media_id"])
        assert m[name]["processed"] is True
        # The legacy file's own hash and size; the stored copy's hash separately.
        assert m[name]["sha256"] == chat.sha(name) == rows[name].sha256
        assert m[name]["file_size"] == len(chat.files[name]) == rows[name].size
        assert m[name]["stored_sha256"] == rec.sha256 == rows[name].stored_sha256
        assert rec.sha256 != chat.sha(name) and rows[name].stored_size == rec.file_size


async def _verify(store, **kw):
    return await verify(store, out=io.StringIO(), bar=False, **kw)


async def _tamper(pool, media_id: int, seq: int = 0) -> None:
    async with pool.acquire() as conn:
        data = await conn.fetchval("SELECT data FROM content_chunks WHERE content_id = (SELECT content_id FROM media_files WHERE id = $1) "
                                   "AND seq = $2", media_id, seq)
        raw = bytearray(pybase64.b64decode(data))
        raw[len(raw) // 2] ^= 0xFF
        await conn.execute("UPDATE content_chunks SET data = $1 WHERE content_id = (SELECT content_id FROM media_files WHERE id = $2) "
                           "AND seq = $3", pybase64.b64encode(bytes(raw)).decode(),
                           media_id, seq)


async def test_verify_from_passes_on_processed_imports_and_names_a_tampered_one(
        store, pool, processed):
    chat, rows = processed
    assert await _verify(store, source=chat.folder) == (2, [])
    assert await _verify(store) == (2, [])
    victim = rows["photo.jpg"].media_id
    await _tamper(pool, victim)
    checked, problems = await _verify(store, source=chat.folder)
    assert checked == 2
    assert [(p.media_id, p.legacy_name) for p in problems] == [(victim, "photo.jpg")]
    assert "sha256" in problems[0].what


async def test_verify_from_tells_a_changed_legacy_file(store, processed):
    chat, rows = processed
    (chat.folder / "iphone.heic").write_bytes(chat.files["iphone.heic"] + b"!")
    _, problems = await _verify(store, source=chat.folder)
    assert [(p.media_id, p.what) for p in problems] == [
        (rows["iphone.heic"].media_id, "the legacy file differs from the one imported")]


async def test_verify_catches_a_media_row_swapped_under_the_map(store, pool, processed):
    # Chunks and media_files.sha256 rewritten together (consistent, so the chunk check
    # passes): only the hash recorded at import shows the copy is not the one imported.
    chat, rows = processed
    victim = rows["photo.jpg"].media_id
    other = b"\xff\xd8\xff" + b"x" * 100
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM content_chunks WHERE content_id = (SELECT content_id FROM media_files WHERE id = $1)", victim)
        await conn.execute("INSERT INTO content_chunks (content_id, seq, data) VALUES ((SELECT content_id FROM media_files WHERE id = $1), 0, $2)",
                           victim, pybase64.b64encode(other).decode())
        await conn.execute("UPDATE media_files SET sha256 = $1, file_size = $2, "
                           "chunk_count = 1 WHERE id = $3",
                           hashlib.sha256(other).digest(), len(other), victim)
        await conn.execute("UPDATE media_contents SET sha256 = $1, file_size = $2, "
                           "chunk_count = 1 WHERE id = (SELECT content_id FROM media_files "
                           "WHERE id = $3)", hashlib.sha256(other).digest(), len(other),
                           victim)
    _, problems = await _verify(store)
    assert [(p.media_id, p.what) for p in problems] == [
        (victim, "the database copy is not the one imported (its sha256 differs from "
                 "the one recorded at import)")]
    got, _ = await _cleanup(store, chat)
    assert got["photo.jpg"] == (KEPT, "the database copy is not the one imported")


async def _cleanup(store, chat, **kw):
    out = io.StringIO()
    decisions = await cleanup(store, chat.folder, out=out, bar=False, **kw)
    return {d.name: (d.outcome, d.reason) for d in decisions}, out.getvalue()


async def test_cleanup_deletes_only_verified_processed_imports(store, pool, processed):
    chat, rows = processed
    got, _ = await _cleanup(store, chat)
    # Processed on purpose is not a mismatch: both would go.
    assert got["photo.jpg"][0] == WOULD_DELETE and got["iphone.heic"][0] == WOULD_DELETE
    assert got["bomb.png"] == (KEPT, "not imported")
    await _tamper(pool, rows["photo.jpg"].media_id)
    got, _ = await _cleanup(store, chat, yes=True)
    assert got["photo.jpg"][0] == KEPT
    assert got["photo.jpg"][1].startswith("the database copy does not verify")
    assert got["iphone.heic"] == (DELETED, "")
    on_disk = {p.name for p in chat.folder.iterdir()}
    assert on_disk == {"photo.jpg", "bomb.png", "cut.jpg"}


async def test_cleanup_keeps_a_processed_import_whose_file_changed(store, processed):
    chat, rows = processed
    (chat.folder / "photo.jpg").write_bytes(chat.files["photo.jpg"][:-1] + b"\0")
    got, _ = await _cleanup(store, chat, yes=True)
    assert got["photo.jpg"] == (KEPT, "the file differs from the one imported")
    assert (chat.folder / "photo.jpg").exists()


async def test_rerun_after_process_imports_nothing_twice(store, pool, processed):
    chat, rows = processed
    # Touched (new mtime) but the same bytes: hashed again, compared with the legacy
    # sha256, not with the stored copy's: already there.
    (chat.folder / "photo.jpg").write_bytes(chat.files["photo.jpg"])
    for process in (True, False):
        report, _ = await run_import(store, chat, process=process)
        again = _rows(report)
        assert again["photo.jpg"].outcome == ALREADY and again["iphone.heic"].outcome == ALREADY
        assert report.count(IMPORTED) == 0
        assert again["photo.jpg"].stored_sha256 == rows["photo.jpg"].stored_sha256
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 2
        assert await conn.fetchval("SELECT count(*) FROM legacy_media") == 2
    (chat.folder / "iphone.heic").write_bytes(chat.files["iphone.heic"] + b"!")
    report, out = await run_import(store, chat, process=True)
    assert _rows(report)["iphone.heic"].outcome == CHANGED
    assert "changed since imported: iphone.heic" in out


async def test_dry_run_uses_the_same_type_policy_and_limits(store, pool, media_chat):
    # Allowed types and per-type limits are the server's processing policy's.
    small = policy(processing__max_image_bytes=10_000)
    report, _ = await run_import(store, media_chat, dry_run=True, server_policy=small)
    rows = _rows(report)
    big = [n for n, d in media_chat.files.items() if len(d) > 10_000]
    assert big and all(rows[n].outcome == FAILED and
                       rows[n].reason.startswith("payload_too_large") for n in big)
    no_jpeg = policy(processing__allowed_types=frozenset({"image/png", "image/heic"}))
    report, _ = await run_import(store, media_chat, dry_run=True, server_policy=no_jpeg)
    assert _rows(report)["photo.jpg"].reason.startswith("unsupported_media_type")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 0


def test_cli_process_manifest_verify(db_dsn, tmp_path):
    from tests.process.test_legacy_import import _pool_dsn
    files = _media_chat_files()
    chat = asyncio.run(_pool_dsn(db_dsn, lambda pool: _media_chat(pool, tmp_path, files)))
    manifest = tmp_path / "import.csv"
    # The deployed processing: compression on, metadata stripped.
    env = {"DATABASE_URL": db_dsn, "MEDIA_IMAGE_COMPRESS": "true",
           "MEDIA_KEEP_IMAGE_METADATA": "false"}
    off = run_cli(["import-legacy", "--from", str(chat.folder), "--process"],
                  {**env, "MEDIA_PROCESSING": "false"}, timeout=120)
    assert off.returncode == 2 and "MEDIA_PROCESSING is off" in off.stderr
    assert not manifest.exists()
    res = run_cli(["import-legacy", "--from", str(chat.folder), "--process",
                   "--manifest", str(manifest)], env, timeout=120)
    assert res.returncode == 1, res.stderr     # the bomb and the truncated file
    assert "Traceback" not in res.stderr
    assert "imported: 2" in res.stdout and "bomb.png: media_too_complex" in res.stdout
    rows = {r["legacy_name"]: r for r in read_manifest(manifest)}
    head = list(rows["photo.jpg"])
    # The first columns as before; what was stored at the end.
    assert head == [*HEADER, "stored_sha256", "stored_size", "processed"]
    photo = rows["photo.jpg"]
    assert photo["sha256"] == chat.sha("photo.jpg").hex()
    assert photo["size"] == str(len(files["photo.jpg"]))
    assert photo["processed"] == "true" and photo["stored_sha256"] not in ("", photo["sha256"])
    assert int(photo["stored_size"]) > 0
    assert rows["bomb.png"]["outcome"] == "failed" and rows["bomb.png"]["processed"] == ""
    res = run_cli(["verify", "--from", str(chat.folder)], env, timeout=120)
    assert res.returncode == 0 and "checked: 2, mismatches: 0" in res.stdout, res.stdout
    # Again: nothing imported twice, the manifest says what is there.
    res = run_cli(["import-legacy", "--from", str(chat.folder), "--process",
                   "--manifest", str(manifest)], env, timeout=120)
    assert "imported: 0" in res.stdout and "already there: 2" in res.stdout
    again = {r["legacy_name"]: r for r in read_manifest(manifest)}
    assert again["photo.jpg"]["outcome"] == ALREADY
    assert again["photo.jpg"]["stored_sha256"] == photo["stored_sha256"]



async def test_migration_0011_keeps_earlier_imports_and_rolls_back(store, pool, db_dsn,
                                                                   media_chat):
    from yoyo import read_migrations
    from yoyo.migrations import topological_sort

    from server.cli.migrate import MIGRATIONS_DIR, apply_migrations, rollback_migrations
    order = [m.id for m in topological_sort(read_migrations(str(MIGRATIONS_DIR)))]
    back = len(order) - order.index("0011_legacy_processed")
    await run_import(store, media_chat)
    before = await _map(pool)
    await pool.expire_connections()
    assert (await asyncio.to_thread(rollback_migrations, db_dsn, back))[-1] == \
        "0011_legacy_processed"
    async with pool.acquire() as conn:
        cols = {r["attname"] for r in await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'legacy_media'::regclass "
            "AND attnum > 0 AND NOT attisdropped")}
        assert {"processed", "stored_sha256"}.isdisjoint(cols)
        assert await conn.fetchval("SELECT count(*) FROM legacy_media") == len(before)
    await asyncio.to_thread(apply_migrations, db_dsn)
    await pool.expire_connections()
    # Imports made before the columns existed kept the file's bytes: no stored hash
    # recorded (no table rewrite), read as the legacy one.
    after = await _map(pool)
    assert all(r["stored_sha256"] is None and not r["processed"] for r in after.values())
    assert {n: r["sha256"] for n, r in after.items()} == \
        {n: r["sha256"] for n, r in before.items()}
    assert await _verify(store, source=media_chat.folder) == (len(before), [])
    report, _ = await run_import(store, media_chat)
    assert {r.name: r.stored_sha256 for r in report.rows if r.outcome == ALREADY} == \
        {n: r["sha256"] for n, r in before.items()}
    got, _ = await _cleanup(store, media_chat)
    assert {n for n, (o, _) in got.items() if o == WOULD_DELETE} == set(before)
    # The constraints hold for rows written from now on.
    import asyncpg
    async with pool.acquire() as conn:
        for processed, stored in ((True, None), (False, b"\0" * 32), (True, b"\0" * 3)):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "UPDATE legacy_media SET processed = $1, stored_sha256 = $2 "
                    "WHERE legacy_name = 'photo.jpg'", processed, stored)


async def test_export_of_processed_imports_says_they_are_not_the_originals(
        store, processed, tmp_path):
    from server.legacy.export import WRITTEN, export
    chat, rows = processed
    to = tmp_path / "restored"
    results = await export(store, to, out=io.StringIO(), bar=False)
    assert {r.name: r.outcome for r in results} == {"photo.jpg": WRITTEN,
                                                    "iphone.heic": WRITTEN}
    photo = await store.stat(rows["photo.jpg"].media_id)
    assert hashlib.sha256((to / "photo.jpg").read_bytes()).digest() == photo.sha256
    m = {r["legacy_name"]: r for r in read_manifest(to / "manifest.csv")}
    assert m["photo.jpg"]["sha256"] == photo.sha256.hex()
    assert m["photo.jpg"]["legacy_sha256"] == chat.sha("photo.jpg").hex()
    assert m["photo.jpg"]["processed"] == "true"
