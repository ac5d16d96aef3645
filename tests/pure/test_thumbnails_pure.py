"""Thumbnails without I/O: which size answers a request, the crop and scale geometry,
the request's parsing and what its signature covers, and BlurHash (encoded here,
decoded by a reference decoder written from the algorithm's description)."""
import math
import random
from urllib.parse import parse_qs, urlsplit

import pytest

from server.http.thumbnails import ThumbnailRequest, parse_thumbnail, signed_variant
from server.processing import blurhash
from server.processing.thumbnails import (
    ThumbSize,
    animates,
    choose,
    crop_box,
    scaled_size,
    variant_name,
)
from server.security.signing import Check, UrlSigner
from server.settings import ProcessingSettings, SettingsError, load_settings

SIZES = ProcessingSettings.thumbnail_sizes
KEY = b"k" * 32


# -- choosing a size ---------------------------------------------------------------------

@pytest.mark.parametrize("w,h,method,expected", [
    (32, 32, "crop", (32, 32, "crop")),
    (20, 10, "crop", (32, 32, "crop")),
    (33, 33, "crop", (96, 96, "crop")),
    (96, 96, "crop", (96, 96, "crop")),
    (200, 200, "crop", (320, 240, "scale")),      # no crop covers it: a scale that does
    (100, 100, "scale", (320, 240, "scale")),
    (321, 100, "scale", (640, 480, "scale")),
    (640, 480, "scale", (640, 480, "scale")),
    (2000, 2000, "scale", (800, 600, "scale")),   # nothing covers it: the largest
    (2000, 2000, "crop", (96, 96, "crop")),       # ... of its method
])
def test_choose_the_smallest_covering_size(w, h, method, expected):
    assert choose(SIZES, w, h, method) == ThumbSize(*expected)


def test_choose_falls_back_to_any_method():
    assert choose(((50, 50, "scale"),), 10, 10, "crop") == ThumbSize(50, 50, "scale")


def test_variant_names():
    assert variant_name(ThumbSize(96, 96, "crop"), False) == "thumb_96x96_crop"
    assert variant_name(ThumbSize(800, 600, "scale"), True) == "thumb_800x600_scale_anim"
    assert len(variant_name(ThumbSize(9999, 9999, "scale"), True)) <= 32   # the column


def test_only_images_that_can_move_have_animated_thumbnails():
    assert animates("image/gif", True) and animates("image/webp", True)
    assert not animates("image/jpeg", True) and not animates("image/gif", False)


# -- geometry ----------------------------------------------------------------------------

@pytest.mark.parametrize("src,box,cut,out", [
    ((400, 200), (96, 96), (100, 0, 300, 200), (96, 96)),      # wide: sides cut
    ((200, 400), (96, 96), (0, 100, 200, 300), (96, 96)),      # tall: top and bottom cut
    ((640, 480), (320, 240), (0, 0, 640, 480), (320, 240)),    # same aspect: all of it
    ((50, 40), (96, 96), (5, 0, 45, 40), (40, 40)),            # smaller: never enlarged
    ((1000, 100), (32, 32), (450, 0, 550, 100), (32, 32)),
])
def test_crop_box(src, box, cut, out):
    assert crop_box(*src, *box) == (cut, out)


@pytest.mark.parametrize("src,box,out", [
    ((1000, 500), (320, 240), (320, 160)),
    ((500, 1000), (320, 240), (120, 240)),
    ((100, 50), (320, 240), (100, 50)),          # never enlarged
    ((4000, 3000), (800, 600), (800, 600)),
    ((10000, 1), (320, 240), (320, 1)),          # never below one pixel
])
def test_scaled_size_keeps_the_aspect(src, box, out):
    assert scaled_size(*src, *box) == out


# -- the request and its signature --------------------------------------------------------

@pytest.mark.parametrize("query,expected", [
    ({"width": "96", "height": "96", "method": "crop"}, ThumbnailRequest(96, 96, "crop")),
    ({"width": "320", "height": "240"}, ThumbnailRequest(320, 240, "scale")),
    ({"width": "32", "height": "32", "method": "crop", "animated": "true"},
     ThumbnailRequest(32, 32, "crop", True)),
    ({"width": "32", "height": "32", "animated": "false"}, ThumbnailRequest(32, 32, "scale")),
])
def test_parse_thumbnail(query, expected):
    assert parse_thumbnail({"variant": "thumbnail", **query}) == expected


@pytest.mark.parametrize("query", [
    {}, {"width": "96"}, {"width": "096", "height": "96"}, {"width": "0", "height": "5"},
    {"width": "10000", "height": "5"}, {"width": "-5", "height": "5"},
    {"width": "5", "height": "5", "method": "stretch"},
    {"width": "5", "height": "5", "animated": "yes"},
])
def test_parse_thumbnail_refuses(query):
    assert isinstance(parse_thumbnail(query), str)
    assert signed_variant({"variant": "thumbnail", **query}) is None


def test_the_signature_covers_the_whole_thumbnail_request():
    signer = UrlSigner([KEY], 3600, clock=lambda: 1_000_000)
    url = signer.thumbnail_url(7, ThumbnailRequest(96, 96, "crop", True))
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert q["variant"] == "thumbnail" and q["animated"] == "true"

    def check(**changes):
        query = {**q, **changes}
        query = {k: v for k, v in query.items() if v is not None}
        return signer.verify(7, signed_variant(query), query["exp"], query["sig"])

    assert check() is Check.OK
    for change in ({"width": "97"}, {"height": "32"}, {"method": "scale"},
                   {"animated": None}, {"animated": "false"}, {"variant": "preview"},
                   {"variant": None}):
        assert check(**change) is Check.INVALID, change
    assert signer.verify(8, signed_variant(q), q["exp"], q["sig"]) is Check.INVALID
    # A plain variant's signature is unchanged by the extension.
    plain = signer.media_url(7, "preview")
    pq = {k: v[0] for k, v in parse_qs(urlsplit(plain).query).items()}
    assert signer.verify(7, signed_variant(pq), pq["exp"], pq["sig"]) is Check.OK


def test_public_thumbnail_urls_carry_no_signature():
    signer = UrlSigner([KEY], 3600, public=True)
    assert signer.thumbnail_url(3, ThumbnailRequest(32, 32, "crop")) == \
        "/api/media/serve/3?variant=thumbnail&width=32&height=32&method=crop"


# -- settings ----------------------------------------------------------------------------

def test_thumbnail_settings():
    s = load_settings({"MEDIA_THUMBNAIL_SIZES": "64x64-crop, 1024x768-scale",
                       "MEDIA_THUMBNAIL_EAGER": "64x64-crop"})
    assert s.processing.thumbnail_sizes == ((64, 64, "crop"), (1024, 768, "scale"))
    assert s.processing.thumbnail_eager == ((64, 64, "crop"),)
    assert load_settings({"MEDIA_THUMBNAIL_EAGER": "none"}).processing.thumbnail_eager == ()
    assert load_settings({}).processing.thumbnail_eager == ((32, 32, "crop"), (96, 96, "crop"))
    for env in ({"MEDIA_THUMBNAIL_SIZES": "64x64"}, {"MEDIA_THUMBNAIL_SIZES": "none"},
                {"MEDIA_THUMBNAIL_SIZES": "0x5-crop"},
                {"MEDIA_THUMBNAIL_EAGER": "50x50-crop"}):
        with pytest.raises(SettingsError, match="MEDIA_THUMBNAIL"):
            load_settings(env)


# -- BlurHash ----------------------------------------------------------------------------

def decode(hash_: str, width: int, height: int) -> list[tuple[int, int, int]]:
    """A reference BlurHash decoder, from woltapp/blurhash's algorithm.md."""
    def b83(s: str) -> int:
        v = 0
        for ch in s:
            v = v * 83 + blurhash.BASE83.index(ch)
        return v

    flag = b83(hash_[0])
    nx, ny = flag % 9 + 1, flag // 9 + 1
    assert len(hash_) == 4 + 2 * nx * ny
    max_value = (b83(hash_[1]) + 1) / 166
    dc = b83(hash_[2:6])
    colors = [tuple(blurhash.srgb_to_linear(c) for c in (dc >> 16, (dc >> 8) & 255, dc & 255))]
    for i in range(1, nx * ny):
        v = b83(hash_[4 + 2 * i:6 + 2 * i])
        colors.append(tuple(math.copysign(((q - 9) / 9) ** 2, q - 9) * max_value
                            for q in (v // 361, (v // 19) % 19, v % 19)))
    out = []
    for y in range(height):
        for x in range(width):
            rgb = [0.0, 0.0, 0.0]
            for j in range(ny):
                for i in range(nx):
                    basis = math.cos(math.pi * x * i / width) * math.cos(math.pi * y * j / height)
                    for c in range(3):
                        rgb[c] += colors[i + j * nx][c] * basis
            out.append(tuple(blurhash.linear_to_srgb(v) for v in rgb))
    return out


@pytest.mark.parametrize("value,length,text", [
    (0, 1, "0"), (82, 1, "~"), (83, 2, "10"), (6888, 2, "~~"), (571787, 4, "1000"),
])
def test_base83(value, length, text):
    assert blurhash.base83(value, length) == text


def test_blurhash_of_a_flat_colour():
    rgb = bytes([200, 30, 60]) * (8 * 6)
    h = blurhash.encode(8, 6, rgb)
    assert len(h) == 28 and h[0] == blurhash.base83(3 + 2 * 9, 1)
    # The average colour is the DC component, exactly; the picture decodes close to it
    # (the basis has no half-pixel offset, so even a flat image has small AC terms).
    assert h[2:6] == blurhash.base83((200 << 16) + (30 << 8) + 60, 4)
    out = decode(h, 16, 12)
    mean = [sum(p[c] for p in out) / len(out) for c in range(3)]
    assert all(abs(m - c) <= 25 for m, c in zip(mean, (200, 30, 60))), mean


def test_blurhash_decodes_close_to_the_image():
    # Left half red, right half blue, with noise: the decoded sides keep their colours.
    rnd = random.Random(5)
    w, h = 32, 24
    px = bytearray()
    for y in range(h):
        for x in range(w):
            base = (220, 40, 40) if x < w // 2 else (40, 40, 220)
            px += bytes(max(0, min(255, c + rnd.randint(-20, 20))) for c in base)
    out = decode(blurhash.encode(w, h, bytes(px)), 8, 6)
    left, right = out[3 * 8 + 1], out[3 * 8 + 6]          # well inside each half
    assert left[0] > 150 and left[2] < 110, left
    assert right[2] > 150 and right[0] < 110, right


@pytest.mark.parametrize("components", [(1, 1), (4, 3), (9, 9)])
def test_blurhash_length_follows_the_components(components):
    rgb = bytes(range(48)) * 4
    h = blurhash.encode(8, 8, rgb[:8 * 8 * 3], *components)
    assert len(h) == 4 + 2 * components[0] * components[1]


def test_blurhash_refuses_bad_input():
    with pytest.raises(ValueError):
        blurhash.encode(2, 2, b"\0" * 11)
    with pytest.raises(ValueError):
        blurhash.encode(2, 2, b"\0" * 12, 10, 3)


# Made with the PyPI package ``blurhash`` 1.1.5 (a port of the reference encoder) from
# the same pixels: the two agree character for character.
@pytest.mark.parametrize("w,h,nx,ny,expected", [
    (13, 9, 4, 3, "LDHLrF?st0?I?^ghtax=R-r;vhr;"),
    (7, 5, 3, 3, "KOGv6M%PI^_MMeJ$nCD+O["),
    (6, 6, 1, 1, "00G]K$"),
])
def test_blurhash_matches_the_reference_encoder(w, h, nx, ny, expected):
    px = bytes((i * 37 + 11 * (i // 7)) % 256 for i in range(w * h * 3))
    assert blurhash.encode(w, h, px, nx, ny) == expected
