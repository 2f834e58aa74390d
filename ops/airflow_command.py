"""Which `airflow` command this environment runs: the one thing every ops module shares."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def airflow_executable() -> str:
    """This environment's `airflow` (beside the running Python), whatever PATH says; PATH's where
    there is none beside it (the official image installs it under the user's ~/.local/bin)."""
    beside = Path(sys.executable).parent / "airflow"
    return str(beside) if beside.exists() else shutil.which("airflow") or str(beside)
