"""Files that are small on the wire and costly to decode, made by the tests."""
from __future__ import annotations

import io
import struct

from PIL import Image

# An AC Huffman table (class 1, id 1) with two codes: "0" for EOB14 (0xE0: an end-of-band
# run of 2**14 + 14 more bits) and "10" for EOB0 (0x00), unused but needed to keep the
# one-bit code from being all ones.
_DHT = b"\xff\xc4" + struct.pack(">H", 2 + 1 + 16 + 2) + b"\x11" \
    + bytes([1, 1] + [0] * 14) + b"\xe0\x00"


def _segments(data: bytes):
    """(marker, whole segment bytes) up to the first SOS, and the offset of that SOS."""
    i = 2
    out = []
    while data[i + 1] != 0xDA:
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append(data[i:i + 2 + n])
        i += 2 + n
    return out, i


def jpeg_scan_bomb(side: int = 4096, scans: int = 3000) -> bytes:
    """A progressive grey JPEG of ``side``x``side`` flat pixels whose end carries
    ``scans`` extra AC refinement scans (Ss=1, Se=63, Ah=1, Al=0), each a few bytes of
    end-of-band runs that cover every block. A decoder walks all 63 coefficients of
    every block in every such scan; libjpeg warns of a bogus progression from the
    second one on and carries on. ``side`` must be a multiple of 512 (runs of 2**14
    blocks)."""
    assert side % 512 == 0
    buf = io.BytesIO()
    Image.new("L", (side, side), 128).save(buf, "JPEG", quality=90, progressive=True)
    base = buf.getvalue()
    assert base.endswith(b"\xff\xd9")
    runs = (side // 8) ** 2 // 2**14
    bits = "0" + "0" * 14          # EOB14 with extra bits 0: a run of 16384 blocks
    stream = bits * runs
    stream += "1" * (-len(stream) % 8)           # pad with ones, as JPEG does
    data = int(stream, 2).to_bytes(len(stream) // 8, "big")
    assert b"\xff" not in data
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + bytes([1, 0x01, 1, 63, 0x10])
    return base[:-2] + _DHT + (sos + data) * scans + b"\xff\xd9"


def zip_of_empty_files(count: int) -> bytes:
    """A valid zip of ``count`` empty stored files, written directly (zipfile takes
    seconds for a few hundred thousand), with a zip64 end record past 65,535 files."""
    local, central = [], []
    offset = 0
    for i in range(count):
        name = b"%07d" % i
        head = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0,
                           len(name), 0) + name
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21,
                                   0, 0, 0, len(name), 0, 0, 0, 0, 0, offset) + name)
        local.append(head)
        offset += len(head)
    cd = b"".join(central)
    return b"".join(local) + cd + zip_end(count, len(cd), offset)


def zip_end(entries: int, cd_size: int, cd_offset: int, comment: bytes = b"",
            zip64: bool | None = None) -> bytes:
    """An archive's end records: the zip64 record and locator when ``zip64`` (by
    default when the count needs it), then the EOCD and its comment."""
    if zip64 is None:
        zip64 = entries > 0xFFFF
    out = b""
    if zip64:
        rec64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries,
                            entries, cd_size, cd_offset)
        out += rec64 + struct.pack("<4sLQL", b"PK\x06\x07", 0, cd_offset + cd_size, 1)
        entries16, size32, offset32 = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    else:
        entries16, size32, offset32 = entries, cd_size, cd_offset
    return out + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries16, entries16,
                             size32, offset32, len(comment)) + comment


# -- jobs for the worker pool's own tests (run in its worker processes) ---------------

def spin() -> None:
    """Burns CPU until killed."""
    while True:
        pass


def allocate(n: int) -> int:
    """Takes ``n`` bytes of memory, and says how many it got."""
    return len(bytearray(n))
