import pytest

from server.http.params import parse_id


@pytest.mark.parametrize("text,expected", [
    pytest.param("1", 1, id="one"),
    pytest.param("2147483647", 2147483647, id="int4-max"),
    pytest.param("2147483648", None, id="int4-max-plus-one"),
    pytest.param("0", None, id="zero"),
    pytest.param("01", None, id="leading-zero-not-canonical"),
    pytest.param(" 1", None, id="space-not-canonical"),
    pytest.param("-1", None, id="negative"),
    pytest.param("+1", None, id="plus"),
    pytest.param("1.0", None, id="decimal"),
    pytest.param("1e3", None, id="exponent"),
    pytest.param("0x1", None, id="hex"),
    pytest.param("١", None, id="arabic-indic-digit"),
    pytest.param("9" * 4000, None, id="huge-never-converted"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="none"),
])
def test_parse_id(text, expected):
    assert parse_id(text) == expected
