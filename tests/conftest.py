from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

# Importing airflow without AIRFLOW_HOME creates ~/airflow; keep it in the project.
REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import duckdb  # noqa: E402
import pytest  # noqa: E402

import pipeline  # noqa: F401, E402  (quiets GX logging before any test imports it)

SHARED_DATA = REPO.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """A real MovieLens copy from ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real MovieLens data not found at {path}")
    return path


def shared_ratings(name: str):
    """The typed ratings of a real copy, read by the pipeline's own reader (skip when absent)."""
    from pipeline.ingest.read import typed_ratings

    return typed_ratings(shared_dataset(name))


@pytest.fixture(autouse=True)
def isolated_var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run folders and downloads of a test go to its own temporary folder."""
    var = tmp_path / "var"
    monkeypatch.setenv("MOVIELENS_VAR_DIR", str(var))
    return var


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"content_type": self.headers["Content-Type"], "json": json.loads(body)})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/dq", received
    server.shutdown()


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A real warehouse with 20 movies and two users' ratings (user 1 rated movie 1, user 2 movie 2)."""
    from pipeline.core import warehouse

    con = warehouse.connect(tmp_path / "wh.duckdb")
    con.execute("CREATE TABLE movies AS SELECT range AS movie_id, 'Film ' || range AS title FROM range(1, 21)")
    con.execute("CREATE TABLE ratings AS SELECT * FROM (VALUES (1, 1, 5.0), (2, 2, 4.0)) t(user_id, movie_id, rating)")
    yield con
    con.close()
