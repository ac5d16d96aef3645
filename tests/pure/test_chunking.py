"""Cutting a stream into base64 chunks, and decoding them back: pure, table-driven."""
import base64
import hashlib
import os

import pytest

import binascii

from server.store.chunking import ChunkEncoder, decode_chunk


@pytest.mark.parametrize("pieces", [
    pytest.param([b""], id="empty"),
    pytest.param([b"a"], id="one-byte-carry"),
    pytest.param([b"ab"], id="two-byte-carry"),
    pytest.param([b"abc"], id="one-group"),
    pytest.param([b"a", b"b", b"c", b"d"], id="bytewise"),
    pytest.param([b"ab", b"cd", b"ef", b"g"], id="carry-across-pieces"),
    pytest.param([b"", b"abcd", b"", b"e"], id="empty-pieces-between"),
    pytest.param([os.urandom(1000), os.urandom(7), os.urandom(2)], id="random"),
])
def test_pieces_of_any_size_give_the_whole_base64(pieces):
    enc = ChunkEncoder(9)
    chunks = [c for p in pieces for c in enc.feed(p)] + enc.finish()
    assert "".join(c.text for c in chunks) == base64.b64encode(b"".join(pieces)).decode()
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert enc.sha256() == hashlib.sha256(b"".join(pieces)).digest()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 8, 9, 10, 17, 18, 19, 1000])
@pytest.mark.parametrize("piece", [1, 2, 5, 9, 64])
def test_chunks_join_to_whole_base64(size, piece):
    data = os.urandom(size)
    enc = ChunkEncoder(9)
    chunks = []
    for i in range(0, size, piece):
        chunks += enc.feed(data[i:i + piece])
    chunks += enc.finish()
    assert "".join(c.text for c in chunks) == base64.b64encode(data).decode()
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert len(chunks) == -(-size // 9)
    # Every chunk but the last is full, and each stands alone as base64.
    for c in chunks:
        assert base64.b64decode(c.text) == data[c.seq * 9:c.seq * 9 + c.nbytes]
        assert c.nbytes == 9 or c is chunks[-1]
        assert "=" not in c.text or c is chunks[-1]
    assert enc.total == size
    assert enc.sha256() == hashlib.sha256(data).digest()


def test_feed_returns_chunk_as_soon_as_full():
    enc = ChunkEncoder(6)
    assert enc.feed(b"abcde") == []
    done = enc.feed(b"fg")
    assert [c.text for c in done] == [base64.b64encode(b"abcdef").decode()]
    assert [c.text for c in enc.finish()] == [base64.b64encode(b"g").decode()]


def test_exact_multiple_has_no_trailing_empty_chunk():
    enc = ChunkEncoder(3)
    assert len(enc.feed(b"abcdef")) == 2
    assert enc.finish() == []


@pytest.mark.parametrize("bad", [0, -3, 4, 10])
def test_chunk_size_must_be_positive_multiple_of_three(bad):
    with pytest.raises(ValueError):
        ChunkEncoder(bad)


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", os.urandom(1000)])
def test_decode_chunk_inverts_the_encoding(data):
    assert decode_chunk(base64.b64encode(data).decode()) == data
    assert decode_chunk(base64.b64encode(data)) == data


@pytest.mark.parametrize("text", ["QUJ", "QU=D", "QUJD\n", "QU JD", "QUJ*"])
def test_decode_chunk_refuses_what_was_not_stored_base64(text):
    with pytest.raises(binascii.Error):
        decode_chunk(text)
