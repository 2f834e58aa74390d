"""A consumer in another process: polls current_recommendations of a serving file.

    python tests/support/serving_reader.py SERVING_FILE OUT_JSONL STOP_FILE

Until STOP_FILE exists, it opens the serving file read-only, reads which run
is current and how many rows and users it has, closes, and appends one JSON
line per attempt to OUT_JSONL: the answer, or the error, and the seconds the
attempt took. A missing file (nothing published yet) is recorded as such.
"""

import json
import sys
import time
from pathlib import Path

import duckdb

QUERY = (
    "SELECT run_id, count(*) AS n_rows, count(DISTINCT user_id) AS n_users "
    "FROM current_recommendations GROUP BY run_id ORDER BY run_id"
)


def main(serving: Path, out: Path, stop: Path) -> None:
    with out.open("w") as sink:
        while not stop.exists():
            started = time.perf_counter()
            record: dict = {}
            if not serving.exists():
                record["missing"] = True
            else:
                try:
                    with duckdb.connect(str(serving), read_only=True) as con:
                        record["answer"] = con.execute(QUERY).fetchall()
                except Exception as exc:  # any failure is what the test looks for
                    record["error"] = f"{type(exc).__name__}: {exc}"
            record["seconds"] = time.perf_counter() - started
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            time.sleep(0.01)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
