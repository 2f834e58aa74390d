"""How long each task of a run took, kept in the run folder so the last task can show them all.

Every stage records itself (`timed`) in timings/<task>.json: its own seconds,
its peak resident memory and, for a process that ran nothing before it (an
Airflow task), the seconds from the process's start to the stage's start
(interpreter, Airflow's task runner, parsing the DAG file, imports). The
report task prints the table at the end of the run's log, puts it in
report.json and on the HTML page.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import gc
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.run_folder import RunFolder

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_STAGES_IN_PROCESS: set[int] = set()  # pids that already ran a stage (the CLI runs them all in one)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), None where that cannot be read."""
    try:
        start_ticks = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def release_free_memory(collect: bool = True) -> bool:
    """Hand the C heap's free pages back to the system (glibc malloc_trim), after a collection.

    A process that runs stage after stage (the CLI, `airflow dags test`) otherwise keeps what
    earlier stages freed as its own: numpy and torch buffers of a few MB come from the heap, and
    glibc returns a freed heap page only at the top of the heap. A long loop of tensors of varying
    sizes (an epoch) fragments the heap the same way. False where there is no glibc.

    The collection then freezes what survived it (gc.freeze): Airflow, Great Expectations and
    torch leave some 660,000 tracked objects in a `dags test` process, and each full collection
    walked them all, 0.4-0.6 s a stage, 7 s of a 2-minute ml-100k run. Frozen objects are still
    freed when their last reference goes; only a reference cycle among them that dies later is
    never collected, and what is alive at a stage boundary is modules, caches and Airflow's own.
    They are thawed at exit, so the interpreter's last collection still finalises them (DuckDB's
    bindings report every object left unfinalised as a leak).
    """
    if collect:
        gc.collect()
        gc.freeze()
        _thaw_at_exit()
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


@functools.cache
def _thaw_at_exit() -> None:
    atexit.register(gc.unfreeze)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def reset_peak_rss() -> bool:
    """Start this process's peak-RSS count afresh (Linux: clear_refs), so a stage's peak is its own
    even when an earlier stage ran in the same process (the CLI). False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float | None:
    """This process's peak resident memory since the last reset (VmHWM), in MiB."""
    return _status_mib("VmHWM")


def rss_mib() -> float | None:
    """This process's resident memory now (VmRSS), in MiB."""
    return _status_mib("VmRSS")


def _status_mib(field: str) -> float | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def record(
    run_dir: str | Path,
    task: str,
    seconds: float,
    started: datetime,
    startup_s: float | None,
    peak_mib: float | None = None,
    start_mib: float | None = None,
) -> None:
    folder = RunFolder(run_dir).timings
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "task": task,
        "seconds": round(seconds, 2),
        "startup_s": None if startup_s is None else round(startup_s, 2),
        "started": started.isoformat(),
        "peak_rss_mib": None if peak_mib is None else round(peak_mib),
        # resident when the stage began: in a process that ran stages before (the CLI, `airflow dags
        # test`) what they left behind, part of the peak; a task in its own process starts small
        "start_rss_mib": None if start_mib is None else round(start_mib),
    }
    (folder / f"{task}.json").write_text(json.dumps(entry))


def timed(task_name: Callable[..., str] | None = None) -> Callable[[F], F]:
    """Record the decorated stage's seconds under the run folder (its first argument); mapped
    stages name themselves from their arguments (`task_name(run_dir, *args)`)."""

    def wrap(stage: F) -> F:
        @functools.wraps(stage)
        def run(run_dir: str, *args: Any, **kwargs: Any) -> Any:
            pid = os.getpid()
            first = pid not in _STAGES_IN_PROCESS
            startup = process_age_s() if first else None
            _STAGES_IN_PROCESS.add(pid)
            # a later stage of one process has its peak only after a reset; the first one's includes imports
            if not first:
                release_free_memory()
            own_peak = reset_peak_rss() if not first else True
            start_mib = rss_mib()
            started, t0 = datetime.now(UTC), time.perf_counter()
            try:
                return stage(run_dir, *args, **kwargs)
            finally:
                name = task_name(run_dir, *args, **kwargs) if task_name else stage.__name__
                peak = peak_rss_mib() if own_peak else None
                record(run_dir, name, time.perf_counter() - t0, started, startup, peak, start_mib)

        return run  # type: ignore[return-value]

    return wrap


def collect(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every recorded task of the run, in the order they started."""
    folder = RunFolder(run_dir).timings
    entries = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(entries, key=lambda e: e["started"])


def max_peak_mib(entries: list[dict[str, Any]]) -> int | None:
    """The largest task's peak resident memory (tasks run in their own processes under Airflow)."""
    peaks = [e["peak_rss_mib"] for e in entries if e.get("peak_rss_mib") is not None]
    return max(peaks) if peaks else None


def wall_s(entries: list[dict[str, Any]]) -> float | None:
    """Seconds from the first task's start to the last one's end (scheduling gaps included)."""
    dated = [e for e in entries if e.get("started")]
    if not dated:
        return None
    first = min(datetime.fromisoformat(e["started"]) for e in dated)
    last = max(datetime.fromisoformat(e["started"]).timestamp() + e["seconds"] for e in dated)
    return round(last - first.timestamp(), 1)


def shares(entries: list[dict[str, Any]]) -> list[float]:
    """Each task's share of the tasks' summed seconds (the log's table and the report's)."""
    total = sum(e["seconds"] for e in entries) or 1.0
    return [e["seconds"] / total for e in entries]


def table(entries: list[dict[str, Any]]) -> str:
    """A plain-text table for the log: task, seconds, start-up seconds, share of the total, peak memory."""
    width = max([len("task"), *(len(e["task"]) for e in entries)])
    lines = [f"{'task':<{width}}  {'seconds':>8}  {'start-up':>8}  {'share':>6}  {'peak MiB':>8}"]
    for e, share in zip(entries, shares(entries), strict=True):
        startup = "" if e.get("startup_s") is None else f"{e['startup_s']:.1f}"
        peak = "" if e.get("peak_rss_mib") is None else f"{e['peak_rss_mib']:,}"
        lines.append(f"{e['task']:<{width}}  {e['seconds']:>8.1f}  {startup:>8}  {share:>6.1%}  {peak:>8}")
    startups = sum(e.get("startup_s") or 0.0 for e in entries)
    top = max_peak_mib(entries)
    most = "" if top is None else f"{'':>6}  {top:>8,}"
    lines.append(f"{'sum':<{width}}  {sum(e['seconds'] for e in entries):>8.1f}  {startups:>8.1f}  {most}".rstrip())
    wall = wall_s(entries)
    if wall is not None:
        lines.append(f"{'wall':<{width}}  {wall:>8.1f}  (first task's start to the last one's end)")
    return "\n".join(lines)
