"""Named points where the crash-consistency harness (tests/crash/) kills the job.

The harness starts a stage in a child process with MOVIELENS_CRASH_AT=<point>
(or <point>@<n> for its n-th pass) and the process sends itself SIGKILL
there, as the OOM killer or a lost node would: no exception, no cleanup, no
`finally`. A point marks a moment where the files on disk are half-way
between two states (a shard written but not renamed, rows inserted but not
committed). Unset, as in every real run, `reached` is one dictionary lookup.
FoundationDB's BUGGIFY and SQLite's crash-test VFS do the same in their code.
"""

from __future__ import annotations

import os
import signal

ENV = "MOVIELENS_CRASH_AT"
_passes: dict[str, int] = {}


def reached(point: str) -> None:
    """SIGKILL this process if the harness asked for a crash at `point` (on its n-th pass)."""
    target = os.environ.get(ENV)
    if not target:
        return
    name, _, nth = target.partition("@")
    if name != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
