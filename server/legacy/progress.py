"""Progress for the long commands: a bar on a terminal, plain lines otherwise.

Logs, pipes and cron mails want one line per event they can grep; a person at a
terminal wants a bar (tqdm) with the events printed above it.
"""
from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, total: int, what: str, *, out: TextIO | None = None,
                 bar: bool | None = None):
        self.out = out or sys.stdout
        use_bar = sys.stderr.isatty() if bar is None else bar
        self._bar = None
        if use_bar:
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=what, unit="file", file=sys.stderr)

    def line(self, text: str) -> None:
        """An event worth a line of its own (imported, failed, mismatch...)."""
        if self._bar is not None:
            self._bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def step(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
