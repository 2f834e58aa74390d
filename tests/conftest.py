from __future__ import annotations

import os
from pathlib import Path

# Importing airflow without AIRFLOW_HOME creates ~/airflow; keep it in the project.
REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest  # noqa: E402

import pipeline  # noqa: F401, E402  (quiets GX logging before any test imports it)

SHARED_DATA = REPO.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """A real MovieLens copy from ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real MovieLens data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def isolated_var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run folders and downloads of a test go to its own temporary folder."""
    var = tmp_path / "var"
    monkeypatch.setenv("MOVIELENS_VAR_DIR", str(var))
    return var
