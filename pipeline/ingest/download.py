"""Fetch the official GroupLens archive when no local dataset folder is given.

The archive's files are checked against pinned SHA-256 sums of the released
files (the zip itself may be re-packed; its contents may not change).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from pipeline.core.progress import Progress

log = logging.getLogger(__name__)

ML_LATEST_SMALL_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
ML_LATEST_SMALL_SHA256 = {
    "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
}

HOW_TO_POINT_AT_LOCAL_FILES = (
    "To use files already on disk, point the job at a folder holding a MovieLens release "
    "(ml-100k: u.data, u.item, u.user; ml-1m: ratings.dat, movies.dat, users.dat; "
    "ml-latest-small: ratings.csv, movies.csv):\n"
    "    make run DATASET=/path/to/ml-latest-small\n"
    "or set MOVIELENS_DATASET=/path/to/folder (on the team's machines: ../shared/data/ml-latest-small)."
)


class DownloadError(RuntimeError):
    """The archive could not be fetched or did not verify."""

    rule = "dataset_downloads"  # its dq_alerts rule when it stops a run (pipeline.stages.fetch)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(folder: Path, expected: dict[str, str]) -> list[str]:
    """Names of files missing from `folder` or differing from their pinned sum."""
    return [
        name for name, digest in expected.items() if not (folder / name).is_file() or sha256_of(folder / name) != digest
    ]


def _download(url: str, target: Path, timeout_s: float, attempts: int) -> None:
    """Fetch `url` to `target`, retrying network errors a few times with a short back-off.

    Retries live here rather than in Airflow so that an offline machine gets
    its answer in seconds, not after the scheduler's retry delays.
    """
    for attempt in range(1, attempts + 1):
        log.info("downloading %s (attempt %d/%d)", url, attempt, attempts)
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(target, "wb") as out:
                size = int(response.headers.get("Content-Length") or 0)
                with Progress(size, f"downloading {target.name}", "B", log, every_s=10) as progress:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
                        progress.update(len(chunk))
            return
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            if attempt == attempts:
                raise DownloadError(f"could not download {url}: {exc}.\n{HOW_TO_POINT_AT_LOCAL_FILES}") from exc
            log.warning("download failed (%s); retrying in %ds", exc, 2**attempt)
            time.sleep(2**attempt)


def fetch_ml_latest_small(
    dest: Path,
    url: str = ML_LATEST_SMALL_URL,
    expected: dict[str, str] = ML_LATEST_SMALL_SHA256,
    timeout_s: float = 30.0,
    attempts: int = 3,
) -> Path:
    """Return a verified ml-latest-small folder under `dest`, downloading it if needed."""
    folder = Path(dest) / "ml-latest-small"
    if folder.is_dir() and not verify(folder, expected):
        log.info("using verified copy at %s", folder)
        return folder
    Path(dest).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        archive = Path(tmp) / "archive.zip"
        _download(url, archive, timeout_s, attempts)
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{url} did not return a zip archive: {exc}") from exc
        extracted = Path(tmp) / "ml-latest-small"
        bad = verify(extracted, expected)
        if bad:
            raise DownloadError(
                f"archive from {url} failed checksum verification for: {', '.join(bad)}. "
                f"Nothing was installed.\n{HOW_TO_POINT_AT_LOCAL_FILES}"
            )
        if folder.exists():
            shutil.rmtree(folder)
        extracted.rename(folder)
    log.info("downloaded and verified %s", folder)
    return folder
