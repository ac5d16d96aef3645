"""Limits against abuse: what one client, or one request, may cost.

uploads.py bounds the upload slots, their pace and their coding; ranges.py prices a
multi-range request in chunk reads. Other bounds live beside what they bound: a
listing's page size with its cursor (http/paging.py), the send timeout, the stall rule,
the stream slots and the header timeout in the runtime (runtime/sending.py,
runtime/protocol.py), the processing of an upload whose client hung up
(runtime/disconnect.py), a statement's wait in the pool's command_timeout
(DB_COMMAND_TIMEOUT_SECONDS, or DB_ADMIN_COMMAND_TIMEOUT_SECONDS for the admin
commands, in store/pool.py). docs/limits.md tells them all.
"""
