"""Progress of long steps: a live bar on a terminal, a few concise lines in a log.

Airflow's task logs (and pipes, and CI) are not terminals: there a bar would
write thousands of carriage-return frames, so progress becomes one log line
per `every_s` seconds instead. MOVIELENS_PROGRESS=bar|log|off overrides.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType

from tqdm import tqdm

MODES = ("bar", "log", "off")


def mode() -> str:
    """bar on an interactive terminal, log elsewhere, unless MOVIELENS_PROGRESS says otherwise."""
    chosen = os.environ.get("MOVIELENS_PROGRESS", "").strip().lower()
    if chosen in MODES:
        return chosen
    return "bar" if sys.stderr.isatty() else "log"


class Progress:
    """Counts work done out of `total`; use as a context manager around the loop."""

    def __init__(self, total: int, desc: str, unit: str, logger: logging.Logger, every_s: float = 30.0) -> None:
        self.total, self.desc, self.unit, self.log, self.every_s = total, desc, unit, logger, every_s
        self.done = 0
        self.mode = mode()
        self.started = self.last = time.monotonic()
        self.bar = (
            tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, dynamic_ncols=True)
            if self.mode == "bar"
            else None
        )

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.mode == "log" and now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """'desc: 12,000/50,000 users (24%), 3s elapsed, ~10s left'."""
        elapsed = (now or time.monotonic()) - self.started
        share = self.done / self.total if self.total else 1.0
        left = f", ~{elapsed * (1 - share) / share:.0f}s left" if 0 < share < 1 else ""
        return f"{self.desc}: {self.done:,}/{self.total:,} {self.unit} ({share:.0%}), {elapsed:.0f}s elapsed{left}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
