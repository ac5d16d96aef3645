"""Removing metadata from image files without re-encoding them.

When the original bytes are kept (compression off, or the re-encoded file was not
meaningfully smaller), its location and the rest of its EXIF/XMP/IPTC/comments still
have to go. These walk each container's own structure and copy what is image data and
colour profile, dropping the rest; the pixels are untouched. Pure functions on bytes;
a structure that doesn't add up raises InvalidMedia.
"""
from __future__ import annotations

import struct

from PIL import Image

from server.errors import InvalidMedia

# -- JPEG ---------------------------------------------------------------------------

_APP0, _APP1, _APP2, _APP14, _COM, _SOS, _EOI = 0xE0, 0xE1, 0xE2, 0xEE, 0xFE, 0xDA, 0xD9
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def exif_orientation_segment(orientation: int) -> bytes:
    """An APP1 segment holding nothing but the orientation, so a kept original still
    shows upright once its EXIF is gone."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _keep_jpeg_segment(marker: int, body: bytes) -> bool:
    if marker == _APP0:
        return body.startswith((b"JFIF\0", b"JFXX\0"))
    if marker == _APP2:
        return body.startswith(b"ICC_PROFILE\0")   # colour profiles stay; MPF goes
    if marker == _APP14:
        return body.startswith(b"Adobe")           # colour transform, needed to decode
    return not (0xE0 <= marker <= 0xEF or marker == _COM)


def strip_jpeg(data: bytes, orientation: int = 1) -> bytes:
    """The JPEG without EXIF, XMP, IPTC, comments, or anything after its end marker
    (where phones append depth maps and second pictures with their own EXIF)."""
    if data[:2] != b"\xff\xd8":
        raise InvalidMedia("not a JPEG")
    out = [b"\xff\xd8"]
    if orientation not in (0, 1):
        out.append(exif_orientation_segment(orientation))
    i = 2
    while True:
        marker, i = _next_marker(data, i)
        if marker in _STANDALONE:
            continue
        if marker == _EOI:
            out.append(b"\xff\xd9")
            return b"".join(out)
        length = _u16(data, i)
        if length < 2 or i + length > len(data):
            raise InvalidMedia("truncated JPEG")
        if marker == _SOS:
            end = _end_of_image(data, i)
            out.append(data[i - 2:end])
            return b"".join(out)
        if _keep_jpeg_segment(marker, data[i + 2:i + length]):
            out.append(data[i - 2:i + length])
        i += length


def _next_marker(data: bytes, i: int) -> tuple[int, int]:
    if i >= len(data) or data[i] != 0xFF:
        raise InvalidMedia("JPEG structure broken")
    while i < len(data) and data[i] == 0xFF:   # fill bytes
        i += 1
    if i >= len(data):
        raise InvalidMedia("truncated JPEG")
    return data[i], i + 1


def _u16(data: bytes, i: int) -> int:
    if i + 2 > len(data):
        raise InvalidMedia("truncated JPEG")
    return (data[i] << 8) | data[i + 1]


def _end_of_image(data: bytes, i: int) -> int:
    """Index just past EOI, from the first SOS segment at ``i``: entropy-coded data runs
    until an 0xFF that is neither stuffing (FF00) nor a restart marker; progressive
    files have more segments (DHT, SOS) between their scans."""
    i += _u16(data, i)
    while True:
        j = data.find(b"\xff", i)
        if j < 0 or j + 1 >= len(data):
            raise InvalidMedia("truncated JPEG: no end marker")
        m = data[j + 1]
        if m == 0x00 or m == 0xFF or 0xD0 <= m <= 0xD7:
            i = j + 1 if m == 0xFF else j + 2
            continue
        if m == _EOI:
            return j + 2
        i = j + 2 + _u16(data, j + 2)


# -- PNG ----------------------------------------------------------------------------

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def strip_png(data: bytes) -> bytes:
    """The PNG without text chunks (where XMP and comments live), eXIf and tIME."""
    if not data.startswith(_PNG_SIG):
        raise InvalidMedia("not a PNG")
    out, i = [_PNG_SIG], len(_PNG_SIG)
    while i + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        end = i + 12 + length
        if end > len(data):
            break
        if kind not in _PNG_DROP:
            out.append(data[i:end])
        if kind == b"IEND":
            return b"".join(out)
        i = end
    raise InvalidMedia("truncated PNG")


# -- WebP ---------------------------------------------------------------------------

def strip_webp(data: bytes) -> bytes:
    """The WebP without its EXIF and XMP chunks (and their flags in VP8X)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise InvalidMedia("not a WebP")
    out, i = [], 12
    while i + 8 <= len(data):
        kind, size = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
        end = i + 8 + size + (size & 1)
        if i + 8 + size > len(data):
            raise InvalidMedia("truncated WebP")
        chunk = data[i:min(end, len(data))]
        if kind == b"VP8X" and size >= 1:
            chunk = chunk[:8] + bytes([chunk[8] & ~0x0C]) + chunk[9:]
        if kind not in (b"EXIF", b"XMP "):
            out.append(chunk)
        i = end
    body = b"".join(out)
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


# -- GIF ----------------------------------------------------------------------------

_GIF_KEEP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


def walk_gif(data: bytes, *, strip: bool = False) -> tuple[int, bytes]:
    """(number of frames, the GIF without comments and foreign application blocks such
    as XMP when ``strip``). Counts frames without decoding them, so a GIF claiming
    thousands of frames is caught before any is drawn."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise InvalidMedia("not a GIF")
    i = 13
    if data[10] & 0x80:
        i += 3 << ((data[10] & 7) + 1)
    out, frames = [data[:i]], 0
    while i < len(data):
        block = data[i]
        if block == 0x3B:   # trailer
            out.append(b"\x3b")
            return frames, b"".join(out)
        if block == 0x21:
            label = data[i + 1] if i + 1 < len(data) else -1
            end = _skip_sub_blocks(data, i + 2)
            keep = not (label == 0xFE or (label == 0xFF and
                                          data[i + 3:i + 14] not in _GIF_KEEP_APPS))
        elif block == 0x2C:
            frames += 1
            if i + 10 > len(data):
                raise InvalidMedia("truncated GIF")
            j = i + 10
            if data[i + 9] & 0x80:
                j += 3 << ((data[i + 9] & 7) + 1)
            end = _skip_sub_blocks(data, j + 1)
            keep = True
        else:
            raise InvalidMedia("GIF structure broken")
        if keep or not strip:
            out.append(data[i:end])
        i = end
    if frames == 0:
        raise InvalidMedia("truncated GIF")
    # No trailer: many encoders forget it; every frame read was whole, so add one.
    out.append(b"\x3b")
    return frames, b"".join(out)


def _skip_sub_blocks(data: bytes, i: int) -> int:
    while True:
        if i >= len(data):
            raise InvalidMedia("truncated GIF")
        n = data[i]
        i += 1 + n
        if n == 0:
            return i


STRIPPERS = {"image/jpeg": None, "image/png": strip_png, "image/webp": strip_webp,
             "image/gif": lambda d: walk_gif(d, strip=True)[1]}
