"""Resumable uploads, tus 1.0 (https://tus.io/protocols/resumable-upload), at
``/api/media/tus/``: headers.py parses the protocol's headers (pure), store.py keeps an
upload's state and bytes in PostgreSQL beside the media store; server/api/tus.py
answers the routes. Any instance can continue any upload: nothing lives only in one process.
"""
