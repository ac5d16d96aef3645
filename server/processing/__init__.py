"""Media processing: what is done to every received file (see pipeline.py)."""
