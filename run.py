#!/usr/bin/env python3
"""Entry point from a checkout: ``python run.py [command]``; see server/cli/main.py."""
import sys

from server.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
