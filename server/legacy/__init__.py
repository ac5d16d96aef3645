"""Moving from the legacy folder (/uploads/media/): import, verify, clean up, export,
stats, and finding the media an old URL names (lookup.py; the handler that redirects,
or serves from the folder during the transition, is server/api/legacy_urls.py).

Pure decisions live in paths.py (which file a URL may name) and matching.py (which
message owns which file); the commands act on them.
"""
