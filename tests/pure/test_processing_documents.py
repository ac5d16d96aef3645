"""The document checks that run as bytes stream in, fed the same file cut into pieces
of every size, against the same checks run on the whole file (validate_document)."""
from __future__ import annotations

import pytest

from server.errors import InvalidMedia
from server.processing.documents import (
    needs_whole_file,
    stream_check,
    validate_document,
)

PDF = "application/pdf"
TXT = "text/plain"
PDF_OK = b"%PDF-1.7\n" + b"x" * 200_000 + b"\n%%EOF\n"
TEXT_OK = "naïve café ✓ 日本語\r\n\tok\n".encode() * 5_000

CASES = [
    # (mime, bytes, error fragment or None)
    (PDF, PDF_OK, None),
    (PDF, PDF_OK + b"\0" * 60_000, None),                  # trailing junk after %%EOF
    (PDF, PDF_OK + b"\0" * 70_000, "end-of-file marker"),  # marker beyond the last 64 KiB
    (PDF, PDF_OK[:-8], "end-of-file marker"),              # truncated
    (PDF, b"%PDF-1.4\n%%EOF", None),                       # tiny, one piece
    (TXT, TEXT_OK, None),
    (TXT, b"\xef\xbb\xbf" + TEXT_OK, None),                # a BOM
    (TXT, TEXT_OK + b"\x00", "control characters"),
    (TXT, TEXT_OK + b"\x1b[31mred\x1b[0m\n", None),        # ESC: coloured logs are text
    (TXT, TEXT_OK + "✓".encode()[:2], "UTF-8"),            # cut inside the last character
    (TXT, TEXT_OK[:1000] + b"\xc3\x28" + TEXT_OK, "UTF-8"),
    ("text/csv", b"a,b\n1,2\n", None),
    ("application/msword", b"\xd0\xcf\x11\xe0" + b"\0" * 1000, None),   # no check
]


def _feed(mime: str, data: bytes, piece: int) -> None:
    check = stream_check(mime)
    for i in range(0, len(data), piece):
        check.feed(data[i:i + piece])
    check.finish()


@pytest.mark.parametrize("piece", [1, 2, 3, 4096, 65_535, 65_536, 1 << 20])
@pytest.mark.parametrize("mime,data,error", CASES,
                         ids=[f"{c[0].split('/')[1]}-{i}" for i, c in enumerate(CASES)])
def test_streamed_check_agrees_with_the_file_check(tmp_path, mime, data, error, piece):
    if piece < 4096 and len(data) > 300_000:
        data = data[-300_000:] if mime == PDF else data   # keep one-byte feeds quick
    path = tmp_path / "f"
    path.write_bytes(data)
    outcomes = []
    for run in (lambda: _feed(mime, data, piece), lambda: validate_document(str(path), mime)):
        try:
            run()
            outcomes.append(None)
        except InvalidMedia as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]
    if error is None:
        assert outcomes[0] is None
    else:
        assert outcomes[0] is not None and error in outcomes[0]


@pytest.mark.parametrize("mime,whole", [
    ("application/zip", True),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", True),
    ("application/epub+zip", True),
    (PDF, False), (TXT, False), ("text/csv", False), ("application/msword", False),
])
def test_only_archives_need_the_whole_file(mime, whole):
    assert needs_whole_file(mime) is whole
