"""The real download code against a real local HTTP server (the internet is out of reach here)."""

import functools
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from pipeline.ingest.download import DownloadError, fetch_ml_latest_small, sha256_of
from tests.support.synthetic import make, write_ml_latest


@pytest.fixture
def served_archive(tmp_path: Path):
    """A zip laid out like GroupLens' ml-latest-small.zip (synthetic rows), served on loopback."""
    folder = write_ml_latest(tmp_path / "src" / "ml-latest-small", make(n_users=5, n_movies=5, per_user=3))
    sums = {p.name: sha256_of(p) for p in folder.iterdir()}
    site = tmp_path / "site"
    site.mkdir()
    with zipfile.ZipFile(site / "ml-latest-small.zip", "w") as zf:
        for p in folder.iterdir():
            zf.write(p, f"ml-latest-small/{p.name}")
    (site / "not-a-zip.zip").write_text("<html>moved</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sums
    server.shutdown()


def test_download_extracts_and_verifies_then_reuses_the_copy(tmp_path: Path, served_archive) -> None:
    base, sums = served_archive
    folder = fetch_ml_latest_small(tmp_path / "data", f"{base}/ml-latest-small.zip", sums)
    assert sorted(p.name for p in folder.iterdir()) == sorted(sums)
    # a verified copy is reused: a dead URL is never contacted
    again = fetch_ml_latest_small(tmp_path / "data", "http://127.0.0.1:9/none.zip", sums)
    assert again == folder


def test_checksum_mismatch_installs_nothing(tmp_path: Path, served_archive) -> None:
    base, sums = served_archive
    wrong = {**sums, "ratings.csv": "0" * 64}
    with pytest.raises(DownloadError, match=r"failed checksum verification for: ratings\.csv"):
        fetch_ml_latest_small(tmp_path / "data", f"{base}/ml-latest-small.zip", wrong)
    assert not (tmp_path / "data" / "ml-latest-small").exists()


def test_a_non_zip_answer_is_reported(tmp_path: Path, served_archive) -> None:
    base, sums = served_archive
    with pytest.raises(DownloadError, match="did not return a zip"):
        fetch_ml_latest_small(tmp_path / "data", f"{base}/not-a-zip.zip", sums)


def test_unreachable_server_says_how_to_point_at_local_files(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        fetch_ml_latest_small(
            tmp_path / "data", f"http://127.0.0.1:{port}/ml-latest-small.zip", timeout_s=5, attempts=2
        )
    assert "could not download" in str(err.value) and "make run DATASET=" in str(err.value)
