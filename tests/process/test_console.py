"""The console in headless Chromium (Debian's, through Playwright): sign in, upload
with progress, a cut connection resumed, thumbnails, a video played and sought to its
end with ranged requests, the dashboard, the audit log, delete; thumbnails over their
placeholders, quarantine and release, usage per key, all against the real service; a
read key offered nothing it cannot do; a wrong key told so.

A screenshot of each screen is kept in tests/artifacts/console/ (or
$CONSOLE_ARTIFACTS), ignored by git. Skipped, visibly, without Playwright or Chromium.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from server.store.media import STORE
from tests.media import noise_mp4
from tests.procs import REPO
from tests.process.test_browser import chromium

async_api = pytest.importorskip("playwright.async_api")

ARTIFACTS = Path(os.environ.get("CONSOLE_ARTIFACTS") or REPO / "tests" / "artifacts" / "console")
CHUNK = 1024 * 1024          # the console's tus PATCH size (server/console/tus.js)
TIMEOUT_MS = 60_000


def noise_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG big enough to take more than one progress event."""
    img = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def png(width: int = 200, height: int = 120) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 60, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def browser():
    path = chromium()
    async with async_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--autoplay-policy=no-user-gesture-required"])
        try:
            yield b
        finally:
            await b.close()


class Console:
    """One browser page on the console, collecting what the page complained about."""

    def __init__(self, page, base: str):
        self.page, self.base = page, base
        self.problems: list[str] = []
        page.on("pageerror", lambda e: self.problems.append(f"pageerror {e}"))
        page.on("console", self._console)
        page.set_default_timeout(TIMEOUT_MS)

    def _console(self, msg) -> None:
        # A request the tests cut or the service refuses on purpose (a PATCH reset, a
        # 415) is logged by Chromium as a failed load. Anything else is a problem, CSP
        # refusals above all.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            self.problems.append(msg.text)

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    async def sign_in(self, key: str) -> None:
        await self.page.goto(f"{self.base}/console")
        await self.page.fill("#key", key)
        await self.page.click("#signin-form button[type=submit]")

    async def go(self, hash_: str) -> None:
        await self.page.evaluate("h => { location.hash = h; }", hash_)


async def open_console(browser, client, **context) -> Console:
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    return Console(page, str(client.make_url("")).rstrip("/"))


async def test_console_journey(server_for, browser, admin_key):
    seen: list[tuple[str, str, str | None, int]] = []

    async def record(request, response):
        seen.append((request.method, request.path, request.headers.get("Range"),
                     response.status))

    client = await server_for(setup=lambda app: app.on_response_prepare.append(record))
    message_id = await client.app[STORE].create_message()
    video = noise_mp4("libx264", width=320, height=240, fps=10, frames=60,
                      options={"crf": "0"})
    assert len(video) > 2 * CHUNK   # several PATCHes: one of them is cut
    c = await open_console(browser, client)
    page = c.page

    # Sign in: the key's name and scope are shown, the key is kept in the tab only.
    await page.goto(f"{c.base}/console")
    await c.shot("01-sign-in")
    await c.sign_in(admin_key)
    await page.wait_for_selector("#who:has-text('test-admin')")
    assert await page.evaluate("document.cookie") == ""
    assert admin_key in await page.evaluate("JSON.stringify(sessionStorage)")
    await page.wait_for_selector("text=No media matches.")
    await c.shot("02-recent-empty")

    # Two files at once onto the message, each with its progress bar, to completion.
    await c.go(f"#/message/{message_id}")
    await page.wait_for_selector(".dropzone")
    photo = noise_jpeg(900, 700)
    assert len(photo) > CHUNK // 2
    await page.set_input_files("#upload-input", [
        {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo},
        {"name": "poster.png", "mimeType": "image/png", "buffer": png()}])
    for name, size in (("photo.jpg", len(photo)), ("poster.png", len(png()))):
        row = page.locator(f".upload[data-file='{name}']")
        await row.locator(".state[data-state=done]").wait_for()
        bar = row.locator("progress")
        assert await bar.get_attribute("max") == str(size)
        assert await bar.evaluate("p => p.value") == size
    await c.shot("03-uploads-done")

    # A file the service refuses: the reason in words, not retried, nothing stored.
    await page.set_input_files("#upload-input", [
        {"name": "junk.bin", "mimeType": "application/octet-stream",
         "buffer": os.urandom(5000)}])
    junk = page.locator(".upload[data-file='junk.bin']")
    await junk.locator(".state[data-state=failed]").wait_for()
    reason = await junk.locator(".note").inner_text()
    assert "application/octet-stream are not accepted" in reason, reason

    # The third is cut mid-way (the second PATCH's connection reset): it resumes from
    # what the server kept (HEAD) and completes.
    cut: list[str] = []

    async def cut_second_patch(route, request):
        if (request.method == "PATCH" and not cut
                and request.headers.get("upload-offset") not in (None, "0")):
            cut.append(request.url)
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/api/media/tus/**", cut_second_patch)
    await page.set_input_files("#upload-input", [
        {"name": "clip.mp4", "mimeType": "video/mp4", "buffer": video}])
    row = page.locator(".upload[data-file='clip.mp4']")
    await row.locator(".state[data-state=resuming]").wait_for()
    await c.shot("04-upload-resuming")
    await row.locator(".state[data-state=done]").wait_for()
    await page.unroute("**/api/media/tus/**")
    assert len(cut) == 1
    assert "resumed after an interruption" in await row.locator(".note").inner_text()
    tus_path = cut[0].split(str(client.make_url("")).rstrip("/"), 1)[1]
    assert ("HEAD", tus_path, None, 200) in seen
    video_id = int((await row.locator(".note a").get_attribute("href")).rsplit("/", 1)[1])
    await c.shot("05-uploads-with-resume")

    # The grid: the images show their thumbnails, the video its preview.
    await page.wait_for_function("() => document.querySelectorAll('.grid .tile').length === 3")
    loaded = await page.eval_on_selector_all(
        ".grid .tile img.thumb",
        "imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth, () => 0)))")
    assert len(loaded) == 3 and all(w > 0 for w in loaded), loaded
    await c.shot("06-message-grid")

    # The video's detail: it plays, and seeks to its end through ranged requests.
    await page.click(f".tile[data-media-id='{video_id}'] a")
    await page.wait_for_selector("video#player")
    await page.wait_for_selector("dl.facts")
    facts = await page.inner_text("dl.facts")
    assert "320 × 240" in facts and "video (video/mp4)" in facts, facts
    reached = await page.evaluate("""async () => {
        const v = document.getElementById('player');
        v.muted = true;
        if (v.readyState < 1) await new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
        await v.play();
        v.pause();
        const target = v.duration - 0.1;
        const seeked = new Promise(r => v.addEventListener('seeked', r, {once: true}));
        v.currentTime = target;
        await seeked;
        return [v.currentTime, target, v.duration];
    }""")
    assert reached[2] == pytest.approx(6.0, abs=0.1)
    assert reached[0] == pytest.approx(reached[1], abs=0.05), reached
    ranged = [s for s in seen if s[1] == f"/api/media/serve/{video_id}" and s[2]]
    assert ranged and all(s[3] in (206, 304) for s in ranged), ranged
    assert any(s[3] == 206 and s[2] != "bytes=0-" for s in ranged), ranged
    await c.shot("07-video-detail")

    # The dashboard from /api/stats: figures and the growth chart.
    await c.go("#/dashboard")
    await page.wait_for_selector("canvas#growth-chart")
    by_type = await page.inner_text("table")
    assert re.search(r"image\s+2\s", by_type) and re.search(r"video\s+1\s", by_type), by_type
    await page.wait_for_selector("#deliveries-pending")
    await c.shot("08-dashboard")

    # The audit log, filtered.
    await c.go("#/audit")
    await page.wait_for_selector("table")
    await page.select_option("select[name=action]", "upload")
    await page.click("form[role=search] button[type=submit]")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('tbody tr td:nth-child(3)')].every(td => td.textContent === 'upload')")
    # Three uploads and the refused one, with its refusal as outcome.
    assert await page.locator("tbody tr").count() == 4
    body = await page.inner_text("tbody")
    assert "415" in body or "unsupported" in body, body
    await c.shot("09-audit")

    # Delete: gone from the message and from the API.
    await c.go(f"#/media/{video_id}")
    await page.click("#delete")
    await c.shot("10-delete-confirm")
    await page.click("#confirm-delete")
    await page.wait_for_function(f"() => location.hash === '#/message/{message_id}'")
    await page.wait_for_function("() => document.querySelectorAll('.grid .tile').length === 2")
    assert await page.locator(f".tile[data-media-id='{video_id}']").count() == 0
    assert (await client.get(f"/api/media/{video_id}")).status == 404
    await c.shot("11-after-delete")

    # Readable on a phone: the same page at a phone's width, nothing wider than it.
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth <= 390")
    await c.shot("12-phone")
    assert c.problems == []


async def test_a_read_key_is_offered_nothing_it_cannot_do(server_for, browser, key_for):
    client = await server_for()
    store = client.app[STORE]
    message_id = await store.create_message()
    resp = await client.post("/api/media/upload-production",
                             params={"message_id": str(message_id), "filename": "a.png"},
                             data=png(), headers={"Content-Type": "image/png"})
    media_id = (await resp.json())["id"]
    c = await open_console(browser, client)
    await c.sign_in(await key_for("read", "viewer"))
    await c.page.wait_for_selector("#who:has-text('viewer')")
    await c.page.wait_for_selector(f".tile[data-media-id='{media_id}']")
    assert not await c.page.is_visible("nav a[href='#/dashboard']")
    assert not await c.page.is_visible("nav a[href='#/audit']")
    await c.go(f"#/media/{media_id}")
    await c.page.wait_for_selector("dl.facts")
    assert await c.page.locator("#delete").count() == 0
    assert await c.page.locator("text=Send to WhatsApp").count() == 0
    assert not await c.page.is_visible("nav a[href='#/quarantine']")
    assert await c.page.locator("#quarantine-form, #quarantine, #release").count() == 0
    assert "Quarantined" not in await c.page.inner_text("dl.facts")
    await c.shot("13-read-key-detail")
    # Its own usage only: one line.
    await c.go("#/usage")
    await c.page.wait_for_selector("#usage table")
    assert (await c.page.locator("#usage tbody tr td").all_inner_texts())[:2] == ["viewer", "0"]
    assert await c.page.locator("#usage tbody tr").count() == 1
    await c.shot("13a-read-key-usage")
    await c.go(f"#/message/{message_id}")
    await c.page.wait_for_selector(f".tile[data-media-id='{media_id}']")
    assert await c.page.locator(".dropzone").count() == 0

    # Revoked meanwhile: the next view sends the operator back to the sign-in, saying why.
    from server.security.keys import revoke_key
    async with store.connection() as conn:
        assert await revoke_key(conn, "viewer")
    await c.go("#/recent")
    await c.page.wait_for_selector("#signin:not([hidden])")
    assert "not accepted" in await c.page.inner_text("#signin-error")
    assert await c.page.evaluate("sessionStorage.length") == 0
    await c.shot("13b-revoked")
    assert c.problems == []


async def test_a_wrong_key_gets_a_clear_message(server_for, browser):
    client = await server_for()
    c = await open_console(browser, client)
    await c.sign_in("not-a-key")
    error = c.page.locator("#signin-error")
    await error.wait_for()
    await c.page.wait_for_function("() => document.getElementById('signin-error').textContent !== ''")
    assert "unknown, revoked or mistyped" in await error.inner_text()
    assert await c.page.is_hidden("#nav")
    assert await c.page.evaluate("sessionStorage.length") == 0
    await c.shot("14-wrong-key")


async def test_send_to_whatsapp_and_watch_the_delivery(server_for, browser, admin_key, fake):
    from tests.zapi_util import media_samples, upload, zapi_changes
    client = await server_for(**zapi_changes(fake.server.port))
    message_id = await client.app[STORE].create_message()
    data, ctype, name = media_samples()["image"]
    media = await upload(client, message_id, data, ctype, name)
    c = await open_console(browser, client)
    await c.sign_in(admin_key)
    await c.page.wait_for_selector("#who:has-text('test-admin')")
    await c.go(f"#/media/{media['id']}")
    await c.page.fill("input[name=phone]", "5511999999999")
    await c.page.fill("input[name=caption]", "from the console")
    await c.page.click("text=Send to WhatsApp")
    state = c.page.locator(".deliveries .delivery-state")
    await c.page.wait_for_selector(".deliveries .delivery-state:has-text('sent')")
    assert await state.inner_text() == "sent"
    assert len(fake.succeeded()) == 1
    await c.shot("15-whatsapp-sent")
    assert c.problems == []


def human(n: int) -> str:
    """The console's byte figures (dom.js bytes())."""
    units, i, v = ["B", "KiB", "MiB", "GiB", "TiB"], 0, float(n)
    while v >= 1024 and i < len(units) - 1:
        v, i = v / 1024, i + 1
    return f"{v:.1f} {units[i]}" if i else f"{n} B"


async def test_thumbnails_quarantine_and_usage_against_the_service(
        processing_client_with, browser, admin_key):
    """A processed photo's real thumbnail over its real placeholder; quarantine with a
    reason (refused without one, nothing sent), 451 on its signed URL, the quarantine
    list, release; the usage of every key, a page at a time."""
    from server.hygiene import quarantine as q
    from server.security.keys import create_key

    client = await processing_client_with()
    store = client.app[STORE]
    message_id = await store.create_message()
    # Left red, right blue: the placeholder's two sides tell whose picture it is.
    img = Image.new("RGB", (400, 300), (220, 30, 30))
    img.paste((30, 30, 220), (200, 0, 400, 300))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    resp = await client.post("/api/media/upload-production",
                             params={"message_id": str(message_id), "filename": "flag.png"},
                             data=buf.getvalue(), headers={"Content-Type": "image/png"})
    assert resp.status == 201, await resp.text()
    media = await resp.json()
    assert media["placeholder"] and media["thumbnails"]
    # The tile's choice: the smallest thumbnail at least 160 px wide.
    wide = min((t for t in media["thumbnails"] if t["width"] >= 160), key=lambda t: t["width"])
    # More than a page of older quarantined contents (none of them shown by any media),
    # and more than a page of keys before the admin's name, one of them with quotas.
    async with store.connection() as conn:
        for i in range(50):
            await q.quarantine(conn, os.urandom(32), reason=f"infected: Test.Sig-{i}",
                               who="scanner")
        for i in range(50):
            await create_key(conn, f"aa-key-{i:02d}", "write")
        # First by name: on the first page.
        await create_key(conn, "aa-0-limited", "write", limits={
            "quota_bytes": 50 * 1024**3, "quota_files": 1000, "uploads_per_minute": 60})

    c = await open_console(browser, client)
    page = c.page
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    await c.sign_in(admin_key)
    tile = page.locator(f".tile[data-media-id='{media['id']}']")
    await tile.wait_for()
    thumb = tile.locator("img.thumb")
    assert await thumb.get_attribute("src") == wide["url"]
    # The real thumbnail arrived (its size is the 320x240 box's fit of 400x300) ...
    assert await thumb.evaluate("i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])") \
        == [wide["width"], wide["height"]]
    # ... over the placeholder, painted red on the left and blue on the right.
    left, right = await tile.locator("canvas.placeholder").evaluate("""c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const at = x => [...d.slice(4 * (c.width * (c.height >> 1) + x), 4 * (c.width * (c.height >> 1) + x) + 3)];
        return [at(2), at(c.width - 3)];
    }""")
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0], (left, right)
    await c.shot("16-placeholder-and-thumbnail")

    # Quarantine without a reason: told so, nothing sent.
    await c.go(f"#/media/{media['id']}")
    await page.wait_for_selector("#quarantine-form")
    assert "Quarantined" in await page.inner_text("dl.facts")
    await page.click("#quarantine")
    alert = page.locator("#view .error[role=alert]").first
    await page.wait_for_function(
        "() => document.querySelector('#view .error[role=alert]').textContent !== ''")
    assert "Give a reason" in await alert.inner_text()
    assert await page.get_attribute("#quarantine-reason", "aria-invalid") == "true"
    assert await page.evaluate("document.activeElement.id") == "quarantine-reason"
    await c.shot("17-quarantine-needs-a-reason")
    assert not [u for u in posts if u.endswith("/quarantine")]
    url = client.make_url(media["url"])
    async with aiohttp.ClientSession() as anon:
        async with anon.get(url) as before:
            assert before.status == 200

        # With one: the media says so, with its reason; its signed URL answers 451.
        await page.fill("#quarantine-reason", "  reported by a parent  ")
        async with page.expect_response(lambda r: r.request.method == "POST"
                                        and r.url.endswith("/quarantine")) as posted:
            await page.press("#quarantine-reason", "Enter")
        assert (await posted.value).status == 201
        assert (await posted.value).request.post_data_json == {"reason": "reported by a parent"}
        await page.wait_for_selector("#quarantined")
        assert "reported by a parent" in await page.inner_text("#quarantined")
        assert "yes: reported by a parent" in await page.inner_text("dl.facts")
        await page.wait_for_selector("#release")
        await c.shot("17b-quarantined-media")
        async with anon.get(url) as during:
            assert during.status == 451

        # The quarantine page: newest first, its facts and a link to the media; More.
        await c.go("#/quarantine")
        await page.wait_for_selector("#view tbody tr")
        rows = page.locator("#view tbody tr")
        assert await rows.count() == 50
        first = await rows.first.locator("td").all_inner_texts()
        assert first[:3] == [media["sha256"], "reported by a parent", "test-admin"], first
        assert first[4:] == ["1", f"media {media['id']}"], first
        assert await rows.first.locator("a").get_attribute("href") == f"#/media/{media['id']}"
        await c.shot("17c-quarantine-list")
        await page.click("#view button.more")
        await page.wait_for_function("() => document.querySelectorAll('#view tbody tr').length === 51")
        assert await page.is_hidden("#view button.more")
        assert "infected: Test.Sig-0" in await rows.last.inner_text()

        # Released from its page (by the link): served again.
        await rows.first.locator("a").click()
        await page.click("#release")
        await page.wait_for_selector("#quarantine-form")
        assert await page.locator("#quarantined").count() == 0
        async with anon.get(url) as after:
            assert after.status == 200

    # Usage: every key, a page at a time; the admin's bytes are its photo's.
    await c.go("#/dashboard")
    await page.wait_for_selector("#usage table")
    assert await page.locator("#usage tbody tr").count() == 50
    limited = await page.locator("#usage tr:has(td:text-is('aa-0-limited')) td").all_inner_texts()
    assert limited == ["aa-0-limited", "0", "0 B", "50.0 GiB", "1000", "60"], limited
    assert await page.locator("#usage td:text-is('test-admin')").count() == 0
    await page.click("#usage button.more")
    admin_row = page.locator("#usage tr:has(td:text-is('test-admin')) td")
    await admin_row.first.wait_for()
    assert await admin_row.all_inner_texts() == [
        "test-admin", "1", human(media["file_size"]), "none", "none", "none"]
    await c.shot("17d-dashboard-usage")
    assert c.problems == []


async def test_keyboard_sign_in_and_files_dropped_on_a_message(server_for, browser, admin_key):
    client = await server_for()
    message_id = await client.app[STORE].create_message()
    c = await open_console(browser, client)
    page = c.page
    await page.goto(f"{c.base}/console")
    # Keyboard only: Tab to the key field, type, Enter.
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement.id") == "key":
            break
    await page.keyboard.type(admin_key)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#who:has-text('test-admin')")

    await c.go(f"#/message/{message_id}")
    await page.wait_for_selector(".dropzone")
    files = await page.evaluate_handle("""([a, b]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(a)], 'dropped-a.png', {type: 'image/png'}));
        dt.items.add(new File([new Uint8Array(b)], 'dropped-b.png', {type: 'image/png'}));
        return dt;
    }""", [list(png(40, 30)), list(png(30, 40))])
    await page.dispatch_event(".dropzone", "dragover", {"dataTransfer": files})
    await page.dispatch_event(".dropzone", "drop", {"dataTransfer": files})
    for name in ("dropped-a.png", "dropped-b.png"):
        await page.locator(f".upload[data-file='{name}'] .state[data-state=done]").wait_for()
    await page.wait_for_function("() => document.querySelectorAll('.grid .tile').length === 2")

    # Tab reaches a tile (a real link, focus visible); Enter opens it.
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => !!document.activeElement.closest('.tile')"):
            break
    outline = await page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    await c.shot("18-keyboard-focus")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("dl.facts")
    assert "dropped-" in await page.inner_text("#view h1")
    assert c.problems == []


def pdf() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (250, 250, 250)).save(buf, "PDF")
    return buf.getvalue()


async def test_a_pdf_in_a_frame_and_audio_in_the_player(server_for, browser, admin_key):
    from tests.media import av_sample
    client = await server_for()
    message_id = await client.app[STORE].create_message()
    ids = {}
    for name, data, ctype in (("report.pdf", pdf(), "application/pdf"),
                              ("voice.ogg", av_sample("ogg", audio="libopus"), "audio/ogg")):
        resp = await client.post("/api/media/upload-production",
                                 params={"message_id": str(message_id), "filename": name},
                                 data=data, headers={"Content-Type": ctype})
        assert resp.status == 201, await resp.text()
        ids[name] = await resp.json()
    c = await open_console(browser, client)
    await c.sign_in(admin_key)
    await c.page.wait_for_selector("#who:has-text('test-admin')")

    report = ids["report.pdf"]
    await c.go(f"#/media/{report['id']}")
    frame = c.page.locator("iframe.pdf")
    await frame.wait_for()
    assert await frame.get_attribute("src") == report["url"]
    async with c.page.expect_response(lambda r: "/api/media/serve/" in r.url) as served:
        await c.page.reload()
    assert (await served.value).status == 200   # framed: CSP's frame-src 'self' allows it
    await c.page.wait_for_selector("iframe.pdf")
    await c.shot("19-pdf")

    voice = ids["voice.ogg"]
    await c.go(f"#/media/{voice['id']}")
    await c.page.wait_for_selector("audio#player")
    duration = await c.page.evaluate("""async () => {
        const a = document.getElementById('player');
        if (a.readyState < 1) await new Promise((ok, no) => {
            a.addEventListener('loadedmetadata', ok, {once: true});
            a.addEventListener('error', () => no(new Error('audio error')), {once: true});
        });
        return a.duration;
    }""")
    assert duration == pytest.approx(2.0, abs=0.1)
    await c.shot("20-audio")
    assert c.problems == []
