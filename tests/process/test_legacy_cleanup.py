"""cleanup-legacy: deletes only files whose database copy verifies at that moment."""
from __future__ import annotations

import asyncio
import io
import tarfile

import pytest

from server.legacy.cleanup import DELETED, KEPT, WOULD_DELETE, cleanup
from server.legacy.importer import IMPORTED
from server.legacy.lock import LegacyBusy, legacy_lock
from tests.legacy_util import make_chat, run_import
from tests.procs import run_cli


@pytest.fixture
async def imported(store, pool, tmp_path):
    chat = await make_chat(pool, tmp_path)
    report, _ = await run_import(store, chat)
    return chat, {r.name: r.media_id for r in report.rows if r.outcome == IMPORTED}


async def _cleanup(store, chat, **kw):
    out = io.StringIO()
    decisions = await cleanup(store, chat.folder, out=out, bar=False, **kw)
    return {d.name: (d.outcome, d.reason) for d in decisions}, out.getvalue()


def _on_disk(chat) -> set[str]:
    return {p.relative_to(chat.folder).as_posix() for p in chat.folder.rglob("*") if p.is_file()}


async def test_dry_run_deletes_nothing(store, imported):
    chat, ids = imported
    got, out = await _cleanup(store, chat)
    assert {n: o for n, (o, _) in got.items()} == {
        "a.jpg": WOULD_DELETE, "b.png": WOULD_DELETE, "2023/c.jpg": WOULD_DELETE,
        "foto 1.jpg": WOULD_DELETE, "orphan.jpg": KEPT, "page.html": KEPT}
    assert got["orphan.jpg"][1] == "not imported"
    assert "would delete: a.jpg" in out
    assert _on_disk(chat) == set(chat.files)


async def test_deletes_only_verified_files_after_archiving_them(store, pool, imported, tmp_path):
    chat, ids = imported
    (chat.folder / "b.png").write_bytes(chat.files["b.png"] + b"!")   # differs from import
    async with pool.acquire() as conn:                                 # a broken db copy
        await conn.execute("DELETE FROM content_chunks WHERE content_id = (SELECT content_id FROM media_files WHERE id = $1) AND seq = 1",
                           ids["a.jpg"])
    archive = tmp_path / "legacy.tar.gz"
    got, out = await _cleanup(store, chat, yes=True, archive=archive)
    assert got["2023/c.jpg"][0] == got["foto 1.jpg"][0] == DELETED
    assert got["b.png"] == (KEPT, "the file differs from the one imported")
    assert got["a.jpg"][0] == KEPT and "does not verify" in got["a.jpg"][1]
    assert got["orphan.jpg"] == (KEPT, "not imported")
    assert got["page.html"] == (KEPT, "not imported")
    assert _on_disk(chat) == {"a.jpg", "b.png", "orphan.jpg", "page.html"}
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["2023/c.jpg", "foto 1.jpg"]
        assert tar.extractfile("foto 1.jpg").read() == chat.files["foto 1.jpg"]
    # The database copies are still whole, and the old URLs still resolve to them.
    rec = await store.stat(ids["foto 1.jpg"])
    assert b"".join([p async for p in store.read(rec, 0, rec.file_size - 1)]) == \
        chat.files["foto 1.jpg"]


async def test_a_media_deleted_since_import_keeps_its_file(store, imported):
    chat, ids = imported
    await store.delete(ids["2023/c.jpg"])       # its map row goes with it (cascade)
    got, _ = await _cleanup(store, chat, yes=True)
    assert got["2023/c.jpg"] == (KEPT, "not imported")
    assert (chat.folder / "2023" / "c.jpg").exists()


async def test_not_while_an_import_runs(store, imported):
    chat, _ = imported
    async with legacy_lock(store):
        with pytest.raises(LegacyBusy):
            await _cleanup(store, chat, yes=True)
    assert _on_disk(chat) == set(chat.files)


def test_cli_cleanup(db_dsn, tmp_path):
    from tests.process.test_legacy_import import _make_chat_dsn
    chat = asyncio.run(_make_chat_dsn(db_dsn, tmp_path))
    env = {"DATABASE_URL": db_dsn, "MEDIA_CHUNK_BYTES": "3072"}
    run_cli(["import-legacy", "--from", str(chat.folder)], env)
    res = run_cli(["cleanup-legacy", "--from", str(chat.folder)], env)
    assert res.returncode == 0 and "would delete: 4, kept: 2" in res.stdout, res.stderr
    assert _on_disk(chat) == set(chat.files)
    res = run_cli(["cleanup-legacy", "--from", str(chat.folder), "--yes",
                   "--archive", str(tmp_path / "a.tar.gz")], env)
    assert res.returncode == 0 and "deleted: 4, kept: 2" in res.stdout, res.stderr
    assert _on_disk(chat) == {"orphan.jpg", "page.html"}
    # The rollback: export puts the folder back as it was.
    res = run_cli(["export", "--to", str(chat.folder), "--manifest",
                   str(tmp_path / "restored.csv")], env)
    assert res.returncode == 0, res.stdout
    assert "exported: 4" in res.stdout and (tmp_path / "restored.csv").exists()
    assert _on_disk(chat) == set(chat.files)
    for name, data in chat.files.items():
        assert (chat.folder / name).read_bytes() == data
