"""Processes found by their environment: what a test looks for after stopping what it started."""

from pathlib import Path


def processes_with_env(key: str, value: str) -> list[str]:
    """Pids of processes whose environment sets `key` to `value` (readable ones only)."""
    wanted = f"{key}={value}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.append(proc.name)
    return found
