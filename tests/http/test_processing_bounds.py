"""Processing bounded in time and memory: the worker processes (kill past the time
limit, kill when the client's task is cancelled, the memory budget and each worker's
hard limit), estimates from headers, an archive's directory counted before it is read,
and through the server: scan bombs stopped while a photo goes through."""
import asyncio
import io
import os
import zipfile

import psutil
import pytest
from PIL import Image

from server.errors import InvalidMedia, MediaTooComplex
from server.processing import costs
from server.processing.documents import (
    MAX_ZIP_MEMBERS,
    ZIP_TAIL_BYTES,
    ZipDirectory,
    check_zip_directory,
    zip_directory,
)
from server.processing.pipeline import PROCESSING
from server.processing.workers import MemoryBudget, Work, WorkerPool
from tests.bombs import allocate, jpeg_scan_bomb, spin, zip_end, zip_of_empty_files
from tests.media import exif_photo
from tests.procs import until
from tests.http.test_processing_images import assert_refused, count, created, post

MiB = 1024 * 1024


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return t.user + t.system


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# -- the memory budget (pure asyncio) -------------------------------------------------

async def test_budget_refuses_more_than_its_whole_at_once():
    budget = MemoryBudget(100)
    with pytest.raises(MediaTooComplex, match="more than"):
        async with budget.reserve(101):
            pass
    assert budget.used == 0


async def test_budget_makes_a_large_job_wait_and_keeps_arrival_order():
    budget = MemoryBudget(100)
    order = []
    release = asyncio.Event()

    async def job(name, n):
        async with budget.reserve(n):
            order.append(name)
            await release.wait()

    first = asyncio.ensure_future(job("first", 60))
    await until(lambda: order == ["first"], "first runs")
    big = asyncio.ensure_future(job("big", 80))        # must wait for first
    small = asyncio.ensure_future(job("small", 10))    # fits, but arrived after big
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["first"] and budget.used == 60
    release.set()
    await asyncio.gather(first, big, small)
    assert order == ["first", "big", "small"] and budget.used == 0


async def test_budget_waiter_cancelled_gives_nothing_back_twice():
    budget = MemoryBudget(100)
    hold = asyncio.Event()

    async def job(n):
        async with budget.reserve(n):
            await hold.wait()

    a = asyncio.ensure_future(job(70))
    await until(lambda: budget.used == 70, "a holds 70")
    b = asyncio.ensure_future(job(50))
    await asyncio.sleep(0)
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    hold.set()
    await a
    assert budget.used == 0
    async with budget.reserve(100):
        assert budget.used == 100


# -- estimates ------------------------------------------------------------------------

@pytest.mark.parametrize("w, h, mode, size, at_least, at_most", [
    # The PNG: measured at +915 MiB re-encoded in a worker.
    (10_000, 10_000, "RGBA", 420_000, 915 * MiB, 1024 * MiB),
    (4000, 3000, "RGB", 3_000_000, 120_000_000, 200_000_000),      # a 12 MP photo
    (4000, 3000, "L", 1_000_000, 84_000_000, 130_000_000),
    (1, 1, "P", 100, costs.BASE_BYTES, costs.BASE_BYTES + 1000),
])
def test_image_estimate(w, h, mode, size, at_least, at_most):
    assert at_least <= costs.image_bytes(w, h, mode, size) <= at_most


def test_a_10000_square_rgba_png_cannot_run_beside_another_in_the_default_budget():
    from server.settings import ProcessingSettings
    one = costs.image_bytes(10_000, 10_000, "RGBA", 1_000_000)
    assert one <= ProcessingSettings.memory_bytes < 2 * one


# -- an archive's end record, before its directory ------------------------------------

def _zip(n: int, comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(n):
            z.writestr(f"f{i}.txt", "x")
        z.comment = comment
    return buf.getvalue()


@pytest.mark.parametrize("data, expected", [
    (_zip(3), ZipDirectory(3, 3 * (46 + 6))),
    (_zip(2, b"a comment after the record"), ZipDirectory(2, 2 * (46 + 6))),
    (b"prepended junk" + _zip(2), ZipDirectory(2, 2 * (46 + 6))),
    (zip_end(2_000_000, 100_000_000, 10), ZipDirectory(2_000_000, 100_000_000)),
    (zip_end(70_000, 70_000 * 53, 0)[-(22 + 20):], None),          # locator, no record
    (zip_end(5, 5 * 46, 0, zip64=True), ZipDirectory(5, 5 * 46)),
    (_zip(3)[:-10], None),                                          # truncated end
    (os.urandom(5000).replace(b"PK", b"pk"), None),                 # garbage
    (b"PK\x05\x06", None),                                          # too short
    (b"", None),
])
def test_zip_directory(data, expected):
    assert zip_directory(data) == expected


def test_zip_directory_of_a_real_zip64_archive():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(70_000):
            z.writestr(str(i), "")
    data = buf.getvalue()
    d = zip_directory(data[-ZIP_TAIL_BYTES:])
    assert d is not None and d.entries == 70_000 and d.size > 70_000 * 46


@pytest.mark.parametrize("d, error, words", [
    (ZipDirectory(3, 200), None, ""),
    (ZipDirectory(MAX_ZIP_MEMBERS, MAX_ZIP_MEMBERS * 60), None, ""),
    (ZipDirectory(MAX_ZIP_MEMBERS + 1, (MAX_ZIP_MEMBERS + 1) * 60), MediaTooComplex, "files"),
    (ZipDirectory(2_000_000, 94_000_000), MediaTooComplex, "files"),
    (ZipDirectory(10, 2**31), MediaTooComplex, "directory"),
    (ZipDirectory(10_000, 100), InvalidMedia, "damaged"),   # too short for its count
    (None, InvalidMedia, "damaged"),
])
def test_check_zip_directory(d, error, words):
    if error is None:
        check_zip_directory(d)
    else:
        with pytest.raises(error, match=words):
            check_zip_directory(d)


# -- the worker pool ------------------------------------------------------------------

@pytest.fixture
async def workers():
    pool = WorkerPool(1, 64 * MiB)
    await pool.start()
    yield pool
    await pool.aclose()
    assert pool.pids() == []


async def test_a_job_over_its_time_is_killed_and_its_worker_replaced(workers):
    [first] = workers.pids()
    with pytest.raises(MediaTooComplex, match="takes more than"):
        await workers.run(Work(spin, 0.5), ())
    await until(lambda: gone(first), "the worker killed")
    await until(lambda: len(workers.pids()) == 1, "a new worker")
    assert workers.pids() != [first]
    assert await workers.run(Work(allocate, 5), (1000,)) == 1000


async def test_a_cancelled_job_is_killed(workers):
    [pid] = workers.pids()
    job = asyncio.ensure_future(workers.run(Work(spin, 60), ()))
    await until(lambda: cpu_seconds(pid) > 0.2, "the job running")
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    await until(lambda: gone(pid), "the worker killed")
    assert workers.budget.used == 0


async def test_a_long_job_steps_aside_for_the_next(workers):
    # One slot. The long job gives it up at a quarter of its 8 s; the next job runs
    # beside it in a second worker, and is answered while the long one still runs.
    long = asyncio.ensure_future(workers.run(Work(spin, 8), ()))
    [pid] = workers.pids()
    await until(lambda: cpu_seconds(pid) > 0.1, "the long job running")
    assert await workers.run(Work(allocate, 5), (10,)) == 10
    assert not long.done() and workers.pids() == [pid]   # the extra worker let go
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    await until(lambda: gone(pid), "the long job killed")


async def test_a_worker_cannot_grow_past_the_budget(workers):
    # Estimated at nothing, it asks for 1 GiB: refused by the worker's own limit.
    with pytest.raises(MediaTooComplex, match="memory"):
        await workers.run(Work(allocate, 20), (1024 * MiB,))
    # The worker survived that and still takes what fits.
    [pid] = workers.pids()
    assert await workers.run(Work(allocate, 20), (32 * MiB,)) == 32 * MiB
    assert workers.pids() == [pid]


async def test_more_than_the_budget_is_refused_without_running():
    pool = WorkerPool(1, 64 * MiB)      # not started: a refusal starts nothing
    with pytest.raises(MediaTooComplex, match="MiB"):
        await pool.run(Work(allocate, 20, memory=65 * MiB), (1,))
    assert pool.pids() == []
    pool.close()


async def test_close_leaves_no_process():
    pool = WorkerPool(3, 64 * MiB)
    await pool.start()
    pids = pool.pids()
    assert len(pids) == 3
    busy = asyncio.ensure_future(pool.run(Work(spin, 60), ()))
    await until(lambda: any(cpu_seconds(p) > 0.1 for p in pids), "a job running")
    await pool.aclose()
    assert all(gone(p) for p in pids)
    with pytest.raises(MediaTooComplex):
        await busy


# -- through the server ---------------------------------------------------------------

async def test_scan_bombs_are_stopped_while_a_photo_goes_through(processing_client_with,
                                                                 pool, message_id):
    # The bomb: 186 KB, 4096x4096 grey, 3,000 refinement scans; Pillow took 50 s of
    # CPU to decode it on the development machine. Two slots, both taken by bombs:
    # each steps aside at a quarter of its time, and the photo gets a slot.
    client = await processing_client_with(processing__timeout_seconds=2,
                                          processing__concurrency=2)
    workers = client.app[PROCESSING].workers
    bomb = jpeg_scan_bomb(4096, 3000)
    assert len(bomb) < 200_000
    bombs = [asyncio.ensure_future(post(client, message_id, bomb, name=f"b{i}.jpg"))
             for i in range(2)]
    burning: list[int] = []

    def two_burning() -> bool:
        burning[:] = [p for p in workers.pids() if cpu_seconds(p) > 0.3]
        return len(burning) == 2
    await until(two_burning, "both bombs being decoded")
    photo = await created(await post(client, message_id, exif_photo(), name="photo.jpg"))
    assert photo["dimensions"] == {"width": 80, "height": 120}
    for b in bombs:
        resp = await b
        assert resp.status == 422
        body = await resp.json()
        assert body["error"] == "media_too_complex" and "2 s" in body["message"]
    assert await count(pool, "media_files") == 1
    # The bombs' workers were killed, not left to finish; new ones took their place.
    await until(lambda: all(gone(p) for p in burning), "the bombs' workers gone")
    await until(lambda: len(workers.pids()) == 2, "the pool refilled")
    assert not set(workers.pids()) & set(burning)
    for resp in await asyncio.gather(*(post(client, message_id, exif_photo(),
                                            name=f"p{i}.jpg") for i in range(3))):
        await created(resp)
    assert len(workers.pids()) <= 2
    assert not [p for p in workers.pids() if cpu_seconds(p) > 1.5]
    pids = workers.pids()
    await client.close()
    assert workers.pids() == [] and all(gone(p) for p in pids)


async def test_an_image_over_the_memory_budget_is_refused_before_decoding(
        processing_client_with, pool, message_id):
    client = await processing_client_with(processing__memory_bytes=64 * MiB)
    buf = io.BytesIO()
    Image.new("RGBA", (3000, 3000), (1, 2, 3, 4)).save(buf, "PNG")   # ~100 MB to decode
    resp = await post(client, message_id, buf.getvalue(), name="big.png")
    await assert_refused(resp, pool, 422, "media_too_complex", "MiB")
    await created(await post(client, message_id, exif_photo()))


async def test_two_images_that_do_not_fit_the_budget_together_take_turns(
        processing_client_with, message_id):
    # Each 3000x3000 RGBA PNG is estimated at ~120 MiB from its header; 200 MiB holds
    # one at a time, and the second waits rather than being refused.
    client = await processing_client_with(processing__memory_bytes=200 * MiB,
                                          processing__concurrency=2)
    budget = client.app[PROCESSING].workers.budget
    one = costs.image_bytes(3000, 3000, "RGBA", 0)
    assert one <= budget.total < 2 * one
    pngs = []
    for i in range(2):
        buf = io.BytesIO()
        Image.new("RGBA", (3000, 3000), (i, 2, 3, 4)).save(buf, "PNG")
        pngs.append(buf.getvalue())
    for resp in await asyncio.gather(*(post(client, message_id, png, name=f"{i}.png")
                                       for i, png in enumerate(pngs))):
        assert (await created(resp))["dimensions"] == {"width": 2560, "height": 2560}
    assert one <= budget.peak <= budget.total and budget.used == 0


async def test_zip_over_the_member_limit_is_refused_from_its_end_record(
        processing_client_with, pool, message_id):
    # 300,000 empty files in 27 MB: zipfile took +144 MiB and 2.7 s of CPU to read its
    # directory before counting it. One worker, so it is the one that checks.
    client = await processing_client_with(processing__concurrency=1, uploads__max_bytes=64 * MiB)
    [pid] = client.app[PROCESSING].workers.pids()
    before = peak_rss(pid)
    data = zip_of_empty_files(300_000)
    resp = await post(client, message_id, data, name="many.zip")
    await assert_refused(resp, pool, 422, "media_too_complex", f"{MAX_ZIP_MEMBERS}")
    assert client.app[PROCESSING].workers.pids() == [pid]
    assert peak_rss(pid) - before < 16 * MiB
