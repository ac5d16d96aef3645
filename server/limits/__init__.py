"""Limits against abuse: what one client, or one stalled peer, may hold on to.

Each module bounds one resource (README, "Limits and abuse"): uploads.py the upload
slots, their pace and their coding; sending.py a response's time and memory while the
client reads slowly, and how many responses read from the store at once; ranges.py
what a multi-range request may cost; paging.py a listing's size; protocol.py aiohttp's
own error pages and the header timeout; disconnect.py the processing of an upload
whose client hung up; memory.py the allocator's habit of keeping freed memory. (A statement's wait is bounded by the pool's command_timeout,
DB_COMMAND_TIMEOUT_SECONDS, or DB_ADMIN_COMMAND_TIMEOUT_SECONDS for the admin commands,
in store/pool.py.)
"""
