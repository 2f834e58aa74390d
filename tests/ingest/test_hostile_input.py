"""Malformed input never crashes the job: a property test over hostile variants of real-shaped files.

Hypothesis takes a small clean synthetic dataset in each layout (ml-1m, ml-100k,
ml-latest and a dataset.toml spec), picks one of its files (the spec included)
and damages it: byte flips, a truncation, NUL bytes, a very long line, another
separator, stray quotes, mixed line endings, another encoding with or without a
BOM, a binary blob, an empty file, a directory in the file's place. fetch,
validate and load then run as in a real night, beside a warehouse that already
has published recommendations. Every variant must end in one of three ways:
- it passes;
- it passes with warnings (bad rows quarantined or values nulled);
- it stops with a critical dq_alerts row that names a file of the dataset and
  the rule it broke.
In every case the published recommendations are byte-for-byte as before. A
traceback from inside the pipeline, a hang past PER_EXAMPLE_S, or a crashed
reader fails the test. CI runs a short derandomized version;
`HYPOTHESIS_PROFILE=long pytest tests/ingest/test_hostile_input.py` runs thousands.
"""

from __future__ import annotations

import codecs
import faulthandler
import os
import shutil
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.ingest.layouts import LayoutError
from pipeline.ingest.validate import DataQualityError
from pipeline.stages import cli
from pipeline.stages.fetch import fetch as fetch_stage
from pipeline.stages.load import load as load_stage
from pipeline.stages.prepare import prepare
from pipeline.stages.validate import validate as validate_stage
from tests.support.synthetic import make, write_ml1m, write_ml100k, write_ml_latest, write_spec_dataset

LOGICAL_DATE = datetime(2003, 1, 1, tzinfo=UTC)
PER_EXAMPLE_S = 120  # fetch + validate + load of one damaged dataset; past it, a hang
WRITERS = {"ml-1m": write_ml1m, "ml-100k": write_ml100k, "ml-latest": write_ml_latest, "spec": write_spec_dataset}
ENCODING = {"ml-1m": "latin-1", "ml-100k": "latin-1", "ml-latest": "utf-8", "spec": "utf-8"}

COMMON = {
    "deadline": None,  # bounded by the alarm below instead: GX's first call per process is slow
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    "database": None,
}
# ci: a fixed seed, the same variants on every CI run; long: new ones each time
settings.register_profile("ci", max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "12")), derandomize=True, **COMMON)
settings.register_profile("long", max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "500")), **COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@dataclass(frozen=True)
class Damage:
    name: str
    apply: Callable[[bytes, str], bytes] | None  # (content, encoding) -> new content; None: a directory instead


def _flips(positions: list[int], masks: list[int]) -> Damage:
    def apply(data: bytes, _: str) -> bytes:
        out = bytearray(data)
        for p, m in zip(positions, masks, strict=False):
            if out:
                out[p % len(out)] ^= m
        return bytes(out)

    return Damage(f"{len(positions)} byte flip(s)", apply)


def _insert(at: float, what: bytes, name: str) -> Damage:
    return Damage(name, lambda data, _: data[: int(at * len(data))] + what + data[int(at * len(data)) :])


def _reencode(codec: str, bom: bool) -> Damage:
    def apply(data: bytes, encoding: str) -> bytes:
        text = data.decode(encoding)
        out = text.encode(codec)
        if bom and codec.startswith("utf-16"):
            out = (codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE) + out
        elif bom:
            out = codecs.BOM_UTF8 + out
        return out

    return Damage(f"re-encoded {codec}{' with BOM' if bom else ''}", apply)


def _separator(new: bytes) -> Damage:
    def apply(data: bytes, _: str) -> bytes:
        for old in (b"::", b"|", b";", b",", b"\t"):
            if old in data:
                return data.replace(old, new)
        return data

    return Damage(f"separator {new!r}", apply)


def _line_endings(every: int, ending: bytes) -> Damage:
    def apply(data: bytes, _: str) -> bytes:
        lines = data.split(b"\n")
        return b"".join(line + (ending if i % every == 0 else b"\n") for i, line in enumerate(lines[:-1])) + lines[-1]

    return Damage(f"every {every}th line ends {ending!r}", apply)


fraction = st.floats(0.0, 1.0)
DAMAGE = st.one_of(
    st.builds(_flips, st.lists(st.integers(0, 10**6), min_size=1, max_size=20), st.lists(st.integers(1, 255))),
    st.builds(lambda at: Damage(f"truncated at {at:.3f}", lambda d, _: d[: int(at * len(d))]), fraction),
    st.builds(lambda at, n: _insert(at, b"\x00" * n, f"{n} NUL byte(s)"), fraction, st.integers(1, 64)),
    st.builds(
        lambda at, n: _insert(at, b"\n" + b"7" * n + b"\n", f"a line of {n:,} bytes"),
        fraction,
        st.sampled_from([1_000, 100_000, 2_000_000, 10_000_000]),
    ),
    st.builds(_separator, st.sampled_from([b",", b";", b"\t", b"|", b"::", b" ", b""])),
    st.builds(
        lambda at, q, n: _insert(at, q * n, f"{n} stray {q!r}"),
        fraction,
        st.sampled_from([b'"', b"'"]),
        st.integers(1, 3),
    ),
    st.builds(_line_endings, st.integers(1, 5), st.sampled_from([b"\r\n", b"\r", b"\n\n"])),
    st.builds(_reencode, st.sampled_from(["utf-16-le", "utf-16-be", "utf-8", "latin-1", "cp1252"]), st.booleans()),
    st.builds(lambda blob: Damage(f"a binary blob of {len(blob)} bytes", lambda d, _: blob), st.binary(max_size=4096)),
    st.just(Damage("a PNG under the file's name", lambda d, _: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)),
    st.just(Damage("an empty file", lambda d, _: b"")),
    st.just(Damage("a directory in the file's place", None)),
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clean")
    data = make(n_users=20, n_movies=15, per_user=8)
    return {name: writer(root / name, data) for name, writer in WRITERS.items()}


@pytest.fixture(scope="module")
def published(clean, tmp_path_factory) -> Path:
    wh = tmp_path_factory.mktemp("wh") / "published.duckdb"
    args = ["run", "--dataset", str(clean["ml-1m"]), "--warehouse", str(wh), "--run-id", "good", "--models"]
    assert cli.main([*args, "most_popular", "--top-n", "5", "--logical-date", LOGICAL_DATE.isoformat()]) == 0
    return wh


def _recommendations(wh: Path) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute("SELECT * FROM current_recommendations ORDER BY ALL").fetchall()


def _kind(name: str) -> str:
    """A damage's name without its numbers, to count outcomes per kind."""
    return " ".join(w for w in name.split() if not any(c.isdigit() for c in w))


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no outcome within {PER_EXAMPLE_S}s")


@given(layout=st.sampled_from(sorted(WRITERS)), which=st.integers(0, 10), damage=DAMAGE)
def test_a_damaged_file_passes_warns_or_stops_with_a_critical_alert_and_never_crashes(
    layout: str, which: int, damage: Damage, clean, published, tmp_path: Path
) -> None:
    work = tmp_path / uuid.uuid4().hex
    dataset = shutil.copytree(clean[layout], work / "data")
    files = sorted(p.name for p in dataset.iterdir())
    target = dataset / files[which % len(files)]
    if damage.apply is None:
        target.unlink()
        target.mkdir()
    else:
        target.write_bytes(damage.apply(target.read_bytes(), ENCODING[layout]))
    wh = work / "wh.duckdb"
    shutil.copy(published, wh)
    before = _recommendations(wh)
    run_id = f"hostile-{uuid.uuid4().hex[:8]}"
    where = f"{layout}/{target.name} with {damage.name}"

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(PER_EXAMPLE_S)  # a hang in Python code fails here...
    faulthandler.dump_traceback_later(2 * PER_EXAMPLE_S, exit=True)  # ...and one in C kills the process
    stopped: Exception | None = None
    try:
        run_dir = prepare(run_id, LOGICAL_DATE, str(dataset), wh, top_n_items=5, max_epochs=1)
        for stage in (fetch_stage, validate_stage, load_stage):
            stage(run_dir)
    except (DataQualityError, LayoutError) as exc:
        stopped = exc
    except RuntimeError as exc:  # load's own stop: nothing before the logical date to train on
        if "nothing to train on" not in str(exc):
            raise AssertionError(f"{where}: {exc!r}") from exc
        stopped = exc
    except Exception as exc:  # anything else is a crash of the pipeline on bad input
        raise AssertionError(f"{where}: the pipeline crashed with {exc!r}") from exc
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()

    with duckdb.connect(str(wh), read_only=True) as con:
        alerts = con.execute(
            "SELECT file, severity, expectation, message FROM dq_alerts WHERE run_id = ?", [run_id]
        ).fetchall()
    outcome = (
        "stopped: " + type(stopped).__name__ if stopped is not None else "passed with warnings" if alerts else "passed"
    )
    event(outcome)  # `pytest --hypothesis-show-statistics` counts them
    event(f"{outcome} <- {_kind(damage.name)}")
    if stopped is not None and "nothing to train on" not in str(stopped):
        critical = [a for a in alerts if a[1] == "critical"]
        assert critical, f"{where}: stopped with {stopped!r} but no critical alert was recorded"
        for file, _, rule, message in critical:
            assert file and rule and message, f"{where}: an alert without its file or rule: {critical}"
            assert Path(file).name in files or Path(file) == dataset, f"{where}: alert names {file}, not a dataset file"
    else:
        assert {a[1] for a in alerts} <= {"warning"}, f"{where}: a critical alert but the run went on: {alerts}"
    assert _recommendations(wh) == before, f"{where}: the published recommendations changed"
    shutil.rmtree(work, ignore_errors=True)
