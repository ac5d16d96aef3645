"""The named-statement loader and the statements themselves."""
import pytest

from server.legacy.columns import PLACEHOLDER, render
from server.resources import SQL_DIR
from server.store.sqlfiles import Q, parse_sql

# Statements on Citus's catalog and functions: prepared on a real cluster instead
# (tests/citus/test_distribute.py).
CITUS_ONLY = set(parse_sql((SQL_DIR / "distribution.sql").read_text(encoding="utf-8")))


@pytest.mark.parametrize("text,sql,params", [
    pytest.param("-- name: a\nSELECT :x, :y, :x", "SELECT $1, $2, $1", ("x", "y"), id="repeat"),
    pytest.param("-- name: a\nSELECT :x::int", "SELECT $1::int", ("x",), id="cast-kept"),
    pytest.param("-- name: a\nSELECT ':x', :y", "SELECT ':x', $1", ("y",), id="literal-kept"),
    pytest.param("-- name: a\n-- what it does\nSELECT 1;", "SELECT 1", (), id="comment-dropped"),
    pytest.param("-- name: a\nSELECT a||':b'''||:c", "SELECT a||':b'''||$1", ("c",),
                 id="escaped-quote"),
])
def test_parse(text, sql, params):
    st = parse_sql(text)["a"]
    assert st.sql == sql
    assert st.params == params


def test_several_statements_per_file():
    found = parse_sql("-- name: one\nSELECT 1;\n\n-- name: two\nSELECT :p;\n")
    assert list(found) == ["one", "two"]
    assert found["two"].sql == "SELECT $1"


def test_duplicate_name_refused():
    with pytest.raises(ValueError):
        parse_sql("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")


def test_args_checks_names():
    st = parse_sql("-- name: a\nSELECT :x, :y")["a"]
    assert st.args({"y": 2, "x": 1}) == [1, 2]
    with pytest.raises(TypeError):
        st.args({"x": 1})
    with pytest.raises(TypeError):
        st.args({"x": 1, "y": 2, "z": 3})


def test_unknown_statement_is_attribute_error():
    with pytest.raises(AttributeError):
        Q.no_such_statement


async def test_every_statement_prepares_against_the_schema(pool):
    # Each file's statements are valid SQL for the migrated schema (syntax, columns,
    # parameter types), checked by PostgreSQL itself without running them. Statements
    # on the chat's URL column (sql/legacy.sql) get the column the chat has.
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE messages ADD COLUMN media_url TEXT")  # test harness
        for name in set(Q.names()) - CITUS_ONLY:
            st = getattr(Q, name)
            if PLACEHOLDER in st.sql:
                st = render(st, '"media_url"')
            await conn.prepare(st.sql)


async def test_connection_capacity_is_max_connections_less_the_superusers_reserve(pool):
    # bench/report.py refuses a run whose servers' pools would not fit in it.
    async with pool.acquire() as conn:
        available = await Q.connection_capacity.fetchval(conn)
        total = int(await conn.fetchval("SHOW max_connections"))           # test harness
        reserved = int(await conn.fetchval("SHOW superuser_reserved_connections"))
    assert available == total - reserved > 0
