"""Retention: which media are old enough to go (MEDIA_RETENTION, ``media-store purge``).

Pure values only (rules and ages, parsed); the batched purge itself is the store's
(server/store/purge.py), run by a worker (server/workers/retention.py) or by hand
(server/cli/purge.py). Kept free of the store so that settings can parse rules here.
"""
