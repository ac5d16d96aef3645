"""Moving from the legacy folder (/uploads/media/): import, verify, clean up, export,
stats, and the old URLs (redirects, and serving from the folder during the transition).

Pure decisions live in paths.py (which file a URL may name) and matching.py (which
message owns which file); the commands act on them.
"""
