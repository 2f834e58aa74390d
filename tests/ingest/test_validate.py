"""Planted errors in otherwise clean synthetic files must raise the right alert."""

from pathlib import Path

import polars as pl
import pytest

from pipeline.core import warehouse
from pipeline.ingest import dq_tables
from pipeline.ingest.layouts import detect_layout
from pipeline.ingest.validate import CheckResult, ValidationReport, validate_folder
from tests.conftest import shared_dataset
from tests.support.synthetic import make, write_ml1m, write_ml100k, write_ml_latest


def _validate(folder: Path) -> ValidationReport:
    return validate_folder(folder, detect_layout(folder))


def _only_failure(report: ValidationReport, blocking: bool = True) -> CheckResult:
    assert report.passed is not blocking
    assert len(report.failures) == 1, [f.message() for f in report.failures]
    return report.failures[0]


def _edit_line(path: Path, line_no: int, old: str, new: str, encoding: str = "latin-1") -> None:
    lines = path.read_text(encoding=encoding).split("\n")
    assert old in lines[line_no - 1]
    lines[line_no - 1] = lines[line_no - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding=encoding)


@pytest.fixture
def ml1m(tmp_path: Path) -> Path:
    return write_ml1m(tmp_path / "ml1m", make(n_users=30, n_movies=15, per_user=10))


@pytest.mark.parametrize("writer", [write_ml100k, write_ml1m, write_ml_latest])
def test_clean_synthetic_files_pass_every_rule(tmp_path: Path, writer) -> None:
    report = _validate(writer(tmp_path / "d", make(n_users=20, n_movies=15, per_user=8)))
    assert report.passed and report.failures == []
    assert {"movies", "ratings"} <= set(report.staged)


def test_bad_rating_is_a_warning_and_its_line_is_quarantined_not_loaded(ml1m: Path) -> None:
    path = ml1m / "ratings.dat"
    fields = path.read_text().split("\n")[6].split("::")
    _edit_line(path, 7, f"::{fields[2]}::", "::9::")
    report = _validate(ml1m)
    assert report.passed  # one bad row of 160: set aside, the run goes on
    failure = next(f for f in report.failures if f.expectation == "expect_column_values_to_be_between")
    assert failure.file.endswith("ratings.dat") and failure.column == "rating" and failure.severity == "warning"
    assert failure.samples == ["9.0"] and failure.lines == [7] and failure.unexpected_count == 1
    assert report.quarantine[["kind", "line"]].values.tolist() == [["ratings", 7]]
    assert report.quarantine["record"].iloc[0] == "::".join([fields[0], fields[1], "9", fields[3]])
    assert len(report.staged["ratings"]) == report.row_counts["ratings"] - 1


def test_orphan_rating_is_quarantined_by_referential_integrity(ml1m: Path) -> None:
    path = ml1m / "ratings.dat"
    user = path.read_text().split("\n")[2].split("::")[0]
    with open(path, "a") as fh:
        fh.write(f"{user}::999::4::1000000000\n")
    report = _validate(ml1m)
    failure = _only_failure(report, blocking=False)
    assert failure.column == "movie_id" and failure.rule.startswith("every rated movie is in the movies file")
    assert failure.samples == ["999"] and failure.quarantined == 1


def test_duplicate_user_movie_pair_quarantines_every_copy(ml1m: Path) -> None:
    path = ml1m / "ratings.dat"
    first = path.read_text().split("\n")[0]
    with open(path, "a") as fh:
        fh.write(first + "\n")
    failure = _only_failure(_validate(ml1m), blocking=False)
    assert failure.expectation == "expect_compound_columns_to_be_unique"
    assert failure.unexpected_count == 2 and failure.quarantined == 2


def test_too_many_bad_rows_escalate_a_quarantine_rule_to_critical(ml1m: Path) -> None:
    path = ml1m / "ratings.dat"
    lines = path.read_text().split("\n")
    path.write_text("\n".join(line.replace("::", "::-", 1) if i % 10 == 0 else line for i, line in enumerate(lines)))
    report = _validate(ml1m)
    assert not report.passed
    critical = [f for f in report.failures if f.blocking]
    assert critical and critical[0].column == "movie_id" and "too many to quarantine" in critical[0].rule
    assert "ratings" not in report.staged


def test_wrong_separator_fails_structure_and_stops_further_checks(ml1m: Path) -> None:
    path = ml1m / "ratings.dat"
    path.write_text(path.read_text().replace("::", "\t"))
    report = _validate(ml1m)
    failure = _only_failure(report)
    assert failure.column == "_n_fields" and failure.samples[0] == "1"
    assert "wrong separator" in failure.rule
    assert "ratings" not in report.staged


def test_utf8_file_in_a_latin1_layout_is_caught_as_double_encoding(ml1m: Path) -> None:
    path = ml1m / "movies.dat"
    path.write_bytes(path.read_bytes().decode("latin-1").encode("utf-8"))
    failure = _only_failure(_validate(ml1m))
    assert failure.column == "title" and "double-encoded" in failure.rule
    assert any("CafÃ©" in s for s in failure.samples)


def test_latin1_bytes_in_a_utf8_csv_are_rejected_with_line(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "latest", make(n_users=20, n_movies=15, per_user=8))
    path = folder / "movies.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    report = _validate(folder)
    encoding = [f for f in report.failures if f.expectation == "file_is_in_declared_encoding"]
    assert encoding and "INVALID ENCODING" in encoding[0].samples[0] and encoding[0].blocking
    assert encoding[0].lines[0] == 2  # movie 1 is the first data row, after the header


def test_csv_with_wrong_header_names_the_columns_found(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "latest", make(n_users=10, n_movies=10, per_user=5))
    path = folder / "ratings.csv"
    path.write_text(path.read_text().replace("userId,movieId", "user,movie", 1), newline="")
    failure = _only_failure(_validate(folder))
    assert failure.expectation == "expect_table_columns_to_match_ordered_list"
    assert "'user'" in failure.samples[0]


def test_failures_become_dq_alert_rows_and_all_checks_dq_results(ml1m: Path, tmp_path: Path) -> None:
    _edit_line(ml1m / "users.dat", 3, "::", "::X", encoding="latin-1")  # gender 'XF' / 'XM'
    report = _validate(ml1m)
    con = warehouse.connect(tmp_path / "wh.duckdb")
    n = dq_tables.record_checks(con, "run-1", report.results)
    assert n == len(report.failures) >= 1
    assert con.execute("SELECT count(*) FROM dq_results WHERE run_id = 'run-1'").fetchall()[0][0] == len(report.results)
    row = con.execute(
        "SELECT file, expectation, column_name, unexpected_count, sample_values, sample_lines, message "
        "FROM dq_alerts WHERE run_id = 'run-1' AND column_name = 'gender'"
    ).fetchall()
    assert row and row[0][0].endswith("users.dat") and row[0][3] == 1 and row[0][5] == [3]
    assert row[0][4][0].startswith("X")


@pytest.mark.parametrize("name", ["ml-100k", "ml-1m-users-1-2999", "ml-latest-small"])
def test_real_movielens_copies_pass_validation(name: str) -> None:
    report = _validate(shared_dataset(name))
    assert report.passed, [f.message() for f in report.failures]
    assert not report.failures


def test_rules_needing_a_users_file_are_skipped_without_one(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "latest", make(n_users=10, n_movies=10, per_user=5))
    report = _validate(folder)
    assert not [r for r in report.results if r.rule.startswith("every rating's user")]


def test_checking_a_file_in_parts_finds_the_same_problems_and_stages_the_same_rows(ml1m: Path, tmp_path: Path) -> None:
    path = ml1m / "ratings.dat"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace("::", "::x", 1)  # bad movie id on line 6
    lines.append(lines[0])  # a duplicated pair, whose copies must meet in one part
    path.write_text("\n".join(lines) + "\n")
    whole = _validate(ml1m)
    parts = validate_folder(ml1m, detect_layout(ml1m), chunk_rows=70, staged_dir=tmp_path / "staged")
    summary = lambda r: sorted((f.rule, f.unexpected_count, f.quarantined, f.severity) for f in r.failures)  # noqa: E731
    assert summary(parts) == summary(whole) and len(summary(whole)) == 2
    assert sorted(parts.quarantine["line"]) == sorted(whole.quarantine["line"]) == [1, 6, len(lines)]
    staged = pl.read_parquet(tmp_path / "staged" / "ratings" / "*.parquet")
    assert len(list((tmp_path / "staged" / "ratings").glob("*.parquet"))) > 1
    assert staged.height == len(whole.staged["ratings"]) == len(lines) - 3


def test_a_csv_header_carrying_sql_is_a_column_name_not_sql(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "latest", make(n_users=10, n_movies=10, per_user=5))
    path = folder / "ratings.csv"
    hostile = 'timestamp", 42 AS "injected'  # unescaped, this closes the identifier and adds a column
    header = "userId,movieId,rating," + '"' + hostile.replace('"', '""') + '"'
    path.write_text(path.read_text().replace("userId,movieId,rating,timestamp", header, 1), newline="")
    failure = _only_failure(_validate(folder))
    assert failure.expectation == "expect_table_columns_to_match_ordered_list"
    assert hostile in failure.samples[0] and failure.severity == "critical"


def test_every_row_level_warning_rule_says_what_happens_to_the_rows_that_break_it() -> None:
    from pipeline.ingest.validate import KIND_ORDER, load_suite

    for kind in KIND_ORDER:
        suite = load_suite(kind)
        for section in ("lines", "values", "content"):
            for spec in suite.get(section, []):
                meta = spec["meta"]
                if meta["severity"] != "warning":
                    continue
                outcomes = [k for k in ("quarantine", "null", "alert_only") if meta.get(k)]
                assert len(outcomes) == 1, f"{kind}.{section} rule {meta['rule']!r} declares {outcomes or 'none'}"
                if meta.get("null"):
                    assert "column" in spec["kwargs"], f"a null rule names the column it nulls: {meta['rule']!r}"


def test_bad_gender_is_nulled_and_flagged_and_its_value_as_read_recorded(ml1m: Path, tmp_path: Path) -> None:
    gender = (ml1m / "users.dat").read_text(encoding="latin-1").split("\n")[2].split("::")[1]
    _edit_line(ml1m / "users.dat", 3, f"::{gender}::", "::X::")
    report = validate_folder(ml1m, detect_layout(ml1m), staged_dir=tmp_path / "staged")
    failure = _only_failure(report, blocking=False)
    assert failure.column == "gender" and failure.nulled == 1 and failure.quarantined == 0
    assert "1 value(s) nulled and flagged" in failure.message()
    assert report.nulled[["kind", "line", "column", "value"]].values.tolist() == [["users", 3, "gender", "X"]]
    assert report.quarantine.empty
    users = pl.read_parquet(tmp_path / "staged" / "users" / "*.parquet")
    assert users.height == report.row_counts["users"]  # the row is kept...
    flagged = users.filter(pl.col("dq_flags").is_not_null())
    assert flagged["gender"].to_list() == [None]  # ...without its bad value
    assert flagged["dq_flags"].to_list() == [["gender: gender is F or M"]]
    assert users.filter(pl.col("gender") == "X").is_empty()


def test_a_content_rule_on_a_typed_value_nulls_it_too(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "d", make(n_users=30, n_movies=15, per_user=8))
    lines = (folder / "u.user").read_text(encoding="latin-1").split("\n")
    fields = lines[4].split("|")
    lines[4] = "|".join([fields[0], "300", *fields[2:]])  # an age of 300 years
    (folder / "u.user").write_text("\n".join(lines), encoding="latin-1")
    report = validate_folder(folder, detect_layout(folder), staged_dir=tmp_path / "staged")
    failure = _only_failure(report, blocking=False)
    assert failure.column == "age" and failure.nulled == 1
    assert report.nulled[["line", "column", "value"]].values.tolist() == [[5, "age", "300"]]
    users = pl.read_parquet(tmp_path / "staged" / "users" / "*.parquet")
    row = users.filter(pl.col("user_id") == int(fields[0]))
    assert row["age"].to_list() == [None] and row["dq_flags"].to_list()[0][0].startswith("age: ages are plausible")


def test_too_many_bad_values_for_a_null_rule_stop_the_run_as_a_suspect_file(ml1m: Path) -> None:
    path = ml1m / "users.dat"
    lines = path.read_text(encoding="latin-1").split("\n")
    path.write_text(
        "\n".join(line.replace("::F::", "::female::").replace("::M::", "::male::") for line in lines),
        encoding="latin-1",
    )
    report = _validate(ml1m)
    failure = _only_failure(report, blocking=True)
    assert failure.column == "gender" and "too many to quarantine, the file itself is suspect" in failure.rule
    assert report.nulled.empty


def test_nulled_values_reach_dq_nulled_in_the_warehouse(ml1m: Path, tmp_path: Path) -> None:
    path = ml1m / "movies.dat"
    lines = path.read_text(encoding="latin-1").split("\n")
    movie, title, _ = lines[1].split("::")
    lines[1] = f"{movie}::{title}::Drama|Not A Genre"
    path.write_text("\n".join(lines), encoding="latin-1")
    report = _validate(ml1m)
    con = warehouse.connect(tmp_path / "wh.duckdb")
    dq_tables.record_checks(con, "run-1", report.results, report.quarantine, report.nulled)
    rows = con.execute("SELECT kind, line, column_name, rule, value FROM dq_nulled WHERE run_id = 'run-1'").fetchall()
    assert rows == [("movies", 2, "genres", rows[0][3], "Drama|Not A Genre")] and "genres" in rows[0][3]
    dq_tables.record_checks(con, "run-1", report.results, report.quarantine, report.nulled)  # a retry replaces its rows
    assert con.execute("SELECT count(*) FROM dq_nulled").fetchall()[0][0] == 1
