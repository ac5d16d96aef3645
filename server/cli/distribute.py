"""``media-store distribute``: spread the store's tables over a Citus cluster.

Run on the coordinator after ``migrate``. The work is a list of steps, each a pair of
statements in sql/distribution.sql: ``<step>_done`` (has it been applied?) and
``<step>`` (apply it). A step already applied is skipped, so the command is idempotent
and resumes where an interrupted run stopped; each step runs in its own transaction.
``--dry-run`` prints the SQL of the steps still to apply and changes nothing.

The layout and what replaces the triggers, foreign keys and view Citus cannot keep are
in docs/scaling.md ("The layout on Citus").
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from server.store.sqlfiles import Q

# In order: what blocks create_distributed_table goes first (the view over media_files,
# its trigger, the constraints that cannot span shards), then the tables, co-located,
# then what replaces what was dropped.
STEPS = (
    "drop_complete_view",
    "drop_notify_trigger",
    "drop_file_name_unique",
    "drop_message_fkey",
    "drop_delivery_fkey",
    "drop_legacy_fkey",
    "drop_tus_fkey",
    "distribute_media_files",
    "distribute_media_chunks",
    "distribute_media_variants",
    "distribute_media_variant_chunks",
    "nested_colocated_reads",
    "file_data_function",
    "create_complete_view",
    "message_cascade_function",
    "message_cascade",
)


class NotCitus(Exception):
    """The database has no Citus extension: not a coordinator."""


async def pending_steps(conn) -> list[str]:
    """The steps not applied yet, in order."""
    if await Q.citus_version.fetchval(conn) is None:
        raise NotCitus("the Citus extension is not installed in this database "
                       "(CREATE EXTENSION citus on the coordinator and every worker)")
    return [s for s in STEPS if not await getattr(Q, f"{s}_done").fetchval(conn)]


async def distribute(dsn: str, *, dry_run: bool = False,
                     out: Callable[[str], None] = print) -> list[str]:
    """Apply (or, with ``dry_run``, print) the pending steps; return their names."""
    # No command timeout: distributing copies every existing row to the workers.
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        todo = await pending_steps(conn)
        for step in todo:
            st = getattr(Q, step)
            if dry_run:
                out(f"-- {step}\n{st.sql};\n")
                continue
            async with conn.transaction():
                await st.execute(conn)
            out(f"distributed: {step}")
        return todo
    finally:
        await conn.close()


def distribute_command(dsn: str, dry_run: bool) -> int:
    """The command line's ``distribute``; the exit code."""
    try:
        done = asyncio.run(distribute(dsn, dry_run=dry_run))
    except NotCitus as e:
        print(f"error: {e}")
        return 1
    if not done:
        print("nothing to do: already distributed")
    return 0
