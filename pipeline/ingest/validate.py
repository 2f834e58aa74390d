"""Validate raw files with the Great Expectations suites kept in expectations/.

Each suite has four sections, run in order on one file:
- structure: columns, row count and its drift since the previous successful
  run (the file's shape, one row: its columns and _n_rows);
- lines: fields per line, on the text as read;
- values: nulls, number formats and id formats, on the text as read, so a
  failure's samples show exactly what is in the file;
- content: allowed ratings, uniqueness, time bounds and references to other
  files, on typed values.

Every rule has a severity. `critical` stops the run before anything is
published. `warning` lets it go on and still raises an alert, and says what
happens to the rows that break it, so a bad value is never alerted and kept:
- `quarantine`: the row is set aside (file, line, rule, text) instead of
  loaded; for rules whose row is useless without the value (ids, ratings,
  times).
- `null`: the value is nulled, the row is loaded with a `dq_flags` entry
  naming the column and the rule, and dq_nulled keeps the value as read; for
  side attributes a row is useful without (a user's gender, a movie's genres,
  a link's tmdbId). Downstream, a null is an unknown.
- `alert_only` (its reason as the value): rules about a whole column's shape
  ('mostly'), or rows that are held back rather than bad.
When more than `max_bad_fraction` of a file's rows (and more than
ALWAYS_QUARANTINE rows, or every row) break a quarantine or null rule, the
file itself is suspect (wrong separator, wrong unit, wrong layout) and the
rule escalates to critical. A file whose structure fails critically is not
checked further.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from pipeline.core.config import EXPECTATIONS_DIR
from pipeline.ingest.layouts import Layout, RawFile
from pipeline.ingest.read import RawRead, RawReadError, read_raw, stage_typed

log = logging.getLogger(__name__)

# Movies and users first: ratings, tags and links are checked against their ids.
KIND_ORDER = ("movies", "users", "links", "tags", "ratings")
EARLIEST_TIMESTAMP = 788_918_400  # 1995-01-01, before any MovieLens rating
SAMPLE_SIZE = 5
MAX_BAD_FRACTION = 0.01  # more bad rows than this and a quarantine rule is critical
ALWAYS_QUARANTINE = 5  # ...unless there are only this many (a small file), and not every row is bad
CHUNK_ROWS = 2_000_000  # rows of a big file checked at once; partitions keep (user, movie) pairs together
PARTITION_KEY = {"ratings": "user_id", "tags": "user_id"}
IN_MEMORY = ("movies", "users")  # small, and referenced by the other files' rules
MAX_ROW_DROP = 0.5  # more than 50% fewer rows than the previous successful run is an error
NULLED_COLUMNS = ["file", "kind", "line", "column", "rule", "value"]
FLAGS = "dq_flags"  # per row: '<column>: <rule>' for each value a null rule set aside
ID_REGEX = {"integer": r"^[0-9]+$", "text": r"^\S(.*\S)?$"}
TIMESTAMP_REGEX = {
    "unix": r"^[0-9]+$",
    "unix_ms": r"^[0-9]+$",
    "iso": r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$",
}


@dataclass
class CheckResult:
    """One rule applied to one file; what dq_results and dq_alerts are made of."""

    file: str
    suite: str
    expectation: str
    column: str | None
    rule: str
    severity: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    samples: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    quarantined: int = 0
    nulled: int = 0
    docs_url: str | None = None
    spec_index: int = -1  # position in its suite section (to merge a file's parts)
    quarantine_rule: bool = False  # a row-level rule: quarantine or null (escalates when too many break it)

    @property
    def blocking(self) -> bool:
        return not self.success and self.severity == "critical"

    def message(self) -> str:
        where = f" column '{self.column}'" if self.column else ""
        count = (
            f" {self.unexpected_count} of {self.element_count} rows break it;"
            if self.unexpected_count is not None and self.element_count is not None
            else f" {self.unexpected_count} rows break it;"
            if self.unexpected_count is not None
            else ""
        )
        sample = f" e.g. {self.samples}" if self.samples else ""
        at = f" at line(s) {self.lines}" if self.lines else ""
        held = f"; {self.quarantined} row(s) quarantined" if self.quarantined else ""
        held += f"; {self.nulled} value(s) nulled and flagged" if self.nulled else ""
        return f"{self.file}:{where} rule '{self.rule}' ({self.expectation}) failed:{count}{sample}{at}{held}"


@dataclass
class ValidationReport:
    layout: str
    results: list[CheckResult]
    staged: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame  # file, kind, line, rule, record
    row_counts: dict[str, int]  # data rows per file kind, as read
    docs_index: str | None = None
    nulled: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NULLED_COLUMNS))

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success]

    @property
    def passed(self) -> bool:
        return not any(r.blocking for r in self.results)


class DataQualityError(RuntimeError):
    """Raw data broke critical rules; the run must stop before publishing."""

    def __init__(self, failures: list[CheckResult]) -> None:
        lines = "\n".join(f"- [{f.severity}] {f.message()}" for f in failures)
        super().__init__(f"{len(failures)} data-quality rule(s) failed:\n{lines}")
        self.failures = failures


def load_suite(kind: str) -> dict[str, Any]:
    """The suite for one raw file kind, as stored in expectations/<kind>.json."""
    return json.loads((EXPECTATIONS_DIR / f"{kind}.json").read_text())


@dataclass
class _Context:
    """What every file's validation shares: GX, DuckDB, the layout, the run's facts."""

    gx: Any
    source: Any
    con: duckdb.DuckDBPyConnection
    layout: Layout
    logical_date: datetime
    previous_counts: dict[str, int]
    max_bad_fraction: float
    staged_dir: Path | None = None
    chunk_rows: int = CHUNK_ROWS
    staged: dict[str, pd.DataFrame] = field(default_factory=dict)
    quarantine: list[pd.DataFrame] = field(default_factory=list)
    nulled: list[pd.DataFrame] = field(default_factory=list)
    definitions: dict[str, Any] = field(default_factory=dict)  # GX batch and validation definitions by name


def validate_folder(
    folder: Path,
    layout: Layout,
    logical_date: datetime | None = None,
    previous_counts: dict[str, int] | None = None,
    docs_dir: Path | None = None,
    max_bad_fraction: float = MAX_BAD_FRACTION,
    staged_dir: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationReport:
    """Read and check every file of `layout` in `folder`; stage typed rows minus quarantined ones.

    `logical_date` bounds timestamps (default: now); `previous_counts` are the
    row counts of the previous successful run (drift rules are skipped without
    them); with `docs_dir`, Great Expectations Data Docs are built there. With
    `staged_dir`, typed rows are written there as <kind>/part-N.parquet chunk
    by chunk (memory stays bounded by `chunk_rows`); without it they are kept
    in `report.staged`.
    """
    import great_expectations as gx  # here, not at import: 6 s that every other task would pay
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every pandas batch under 1 GB with hash_pandas_object (and
    # none above). Nothing reads the fingerprint back here, and on text columns
    # it cost a third of validating 25M ratings: switch it off for every size.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    _quiet(context)
    if docs_dir is not None:
        _add_docs_site(context, Path(docs_dir))
    scratch = tempfile.TemporaryDirectory(prefix="validate-")
    if staged_dir is not None:
        shutil.rmtree(staged_dir, ignore_errors=True)
        Path(staged_dir).mkdir(parents=True)
    ctx = _Context(
        gx=context,
        source=context.data_sources.add_pandas("raw_files"),
        # raw text lives in a scratch DuckDB file, so big files spill to disk, not to RAM
        con=duckdb.connect(str(Path(scratch.name) / "raw.duckdb"), config={"memory_limit": "512MB"}),
        layout=layout,
        logical_date=logical_date or datetime.now(UTC),
        previous_counts=previous_counts or {},
        max_bad_fraction=max_bad_fraction,
        staged_dir=Path(staged_dir) if staged_dir is not None else None,
        chunk_rows=chunk_rows,
    )
    results: list[CheckResult] = []
    counts: dict[str, int] = {}
    for raw_file in sorted(layout.files, key=lambda f: KIND_ORDER.index(f.kind)):
        path = Path(folder) / raw_file.name
        if not raw_file.required and not path.exists():
            log.info("optional file %s absent; skipped", path)
            continue
        log.info("validating %s against expectations/%s.json", path, raw_file.kind)
        file_results, n_rows = _validate_file(ctx, Path(folder), raw_file)
        results.extend(file_results)
        if n_rows is not None:
            counts[raw_file.kind] = n_rows
    ctx.con.close()
    scratch.cleanup()
    docs_index = _build_docs(context, results, Path(docs_dir)) if docs_dir is not None else None
    quarantine = (
        pd.concat(ctx.quarantine, ignore_index=True)
        if ctx.quarantine
        else pd.DataFrame(columns=["file", "kind", "line", "rule", "record"])
    )
    nulled = pd.concat(ctx.nulled, ignore_index=True) if ctx.nulled else pd.DataFrame(columns=NULLED_COLUMNS)
    return ValidationReport(layout.name, results, ctx.staged, quarantine, counts, docs_index, nulled)


def _validate_file(ctx: _Context, folder: Path, raw_file: RawFile) -> tuple[list[CheckResult], int | None]:
    path = str(folder / raw_file.name)
    try:
        raw = read_raw(ctx.con, folder, raw_file, hash_key=PARTITION_KEY.get(raw_file.kind))
    except RawReadError as exc:
        return [CheckResult(path, raw_file.kind, "file_is_readable", None, exc.reason, "critical", False)], None
    n_rows = raw.n_rows + len(raw.rejects)
    results = _file_level_checks(ctx, raw)
    suite = load_suite(raw_file.kind)
    params = _parameters(ctx, raw_file)
    # Table-level rules see the file's shape in one row: its columns, and its row
    # count as _n_rows (a frame of all its rows would cost GX a 25M-row fingerprint).
    shape = pd.DataFrame({**{c: [None] for c in raw.columns}, "_n_rows": [raw.n_rows]})
    results += _run_section(ctx, raw, shape, suite, "structure", params, {}, {})
    if any(r.blocking for r in results):
        return results, n_rows
    key = PARTITION_KEY.get(raw_file.kind)
    n_parts = max(1, math.ceil(raw.n_rows / ctx.chunk_rows)) if key in raw.columns else 1
    merged: dict[tuple[str, int], CheckResult] = {}
    typed_parts: list[pd.DataFrame] = []
    flagged_kind = _has_null_rules(suite)
    # GX checks a part on one core while a second thread (DuckDB and Polars let go
    # of the GIL) reads the next part and writes the last one's typed rows.
    io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate-io")
    reader = ctx.con.cursor()
    next_text = io.submit(raw.chunk, reader, key, 0, n_parts)
    writes = []
    for part in range(n_parts):
        if n_parts > 1:
            log.info("%s: checking part %d of %d", raw.path.name, part + 1, n_parts)
        text = next_text.result()
        if part + 1 < n_parts:
            next_text = io.submit(raw.chunk, reader, key, part + 1, n_parts)
        bad: dict[int, str] = {}  # line -> first quarantine rule broken
        nulls: dict[int, list[tuple[str, str]]] = {}  # line -> (column, rule) of each value to null
        checks = _run_section(ctx, raw, text, suite, "lines", params, bad, nulls)
        if not any(r.blocking for r in checks):  # a wrong separator makes every value wrong: say it once
            checks += _run_section(ctx, raw, text, suite, "values", params, bad, nulls)
        typed = None
        flags: dict[int, list[str]] = {}
        if not any(r.blocking for r in checks):
            kept = text.drop(index=list(bad))
            if nulls:  # before typing: a value nulled as text is null in every typed column made from it
                kept = kept.copy()
                _null_values(ctx, raw, kept, nulls, flags, bad)
            typed = _with_references(ctx, stage_typed(ctx.con, ctx.layout, raw_file.kind, kept))
            content_nulls: dict[int, list[tuple[str, str]]] = {}
            checks += _run_section(ctx, raw, typed, suite, "content", params, bad, content_nulls)
            _null_values(ctx, raw, typed, content_nulls, flags, bad)
            if flagged_kind:  # the column is there (null where nothing was flagged) in every part
                typed[FLAGS] = pd.Series([flags.get(i) for i in typed.index], index=typed.index, dtype=object)
        for check in checks:
            merged[(check.suite, check.spec_index)] = _merge(merged.get((check.suite, check.spec_index)), check)
        if bad:
            ctx.quarantine.append(_quarantine_rows(raw, text, bad))
        if typed is not None and not any(r.blocking for r in merged.values()):
            typed = typed.drop(index=[i for i in bad if i in typed.index])
            typed = typed.drop(columns=[c for c in typed.columns if c.startswith(UNKNOWN)])
            if ctx.staged_dir is not None:
                writes.append(io.submit(_write_part, ctx.staged_dir / raw_file.kind, part, typed))
            if ctx.staged_dir is None or raw_file.kind in IN_MEMORY:
                typed_parts.append(typed)
        del text, typed
    for write in writes:
        write.result()
    io.shutdown()
    reader.close()
    file_checks = list(merged.values())
    for check in file_checks:  # the whole file's share of bad rows, not one part's
        n = check.element_count or n_rows
        too_many = _too_many(check.unexpected_count or 0, n, ctx.max_bad_fraction)
        if check.quarantine_rule and not check.blocking and too_many:
            _escalate(check, n)
    results += file_checks
    if any(r.blocking for r in results):
        if ctx.staged_dir is not None:
            shutil.rmtree(ctx.staged_dir / raw_file.kind, ignore_errors=True)
    elif typed_parts:
        ctx.staged[raw_file.kind] = pd.concat(typed_parts) if len(typed_parts) > 1 else typed_parts[0]
    return results, n_rows


def _write_part(folder: Path, part: int, typed: pd.DataFrame) -> None:
    folder.mkdir(exist_ok=True)
    overrides = {FLAGS: pl.List(pl.String)} if FLAGS in typed.columns else None
    pl.from_pandas(typed.reset_index(drop=True), schema_overrides=overrides).write_parquet(
        folder / f"part-{part:04d}.parquet"
    )


def _has_null_rules(suite: dict[str, Any]) -> bool:
    return any((s.get("meta") or {}).get("null") for section in ("values", "content") for s in suite.get(section, []))


def _null_values(
    ctx: _Context,
    raw: RawRead,
    frame: pd.DataFrame,
    nulls: dict[int, list[tuple[str, str]]],
    flags: dict[int, list[str]],
    bad: dict[int, str],
) -> None:
    """Null each listed value in `frame` (rows set aside by a quarantine rule are skipped),
    keep it as read in ctx.nulled, and add '<column>: <rule>' to its row's flags."""
    rows = []
    for line in sorted(nulls):
        if line not in frame.index or line in bad:
            continue
        as_read = {column: frame.at[line, column] for column, _ in nulls[line]}  # two rules may null one value
        for column, rule in nulls[line]:
            value = None if pd.isna(as_read[column]) else str(as_read[column])
            rows.append((str(raw.path), raw.raw_file.kind, line, column, rule, value))
            frame.at[line, column] = None
            flags.setdefault(line, []).append(f"{column}: {rule}")
    if rows:
        ctx.nulled.append(pd.DataFrame(rows, columns=NULLED_COLUMNS))


def _merge(into: CheckResult | None, new: CheckResult) -> CheckResult:
    """One rule's result over all parts of a file."""
    if into is None:
        return new
    into.success = into.success and new.success
    if new.severity == "critical":
        into.severity, into.rule = "critical", new.rule
    if new.element_count is not None:
        into.element_count = (into.element_count or 0) + new.element_count
    if new.unexpected_count is not None:
        into.unexpected_count = (into.unexpected_count or 0) + new.unexpected_count
    into.samples = (into.samples + new.samples)[:SAMPLE_SIZE]
    into.lines = (into.lines + new.lines)[:SAMPLE_SIZE]
    into.quarantined += new.quarantined
    into.nulled += new.nulled
    return into


UNKNOWN = "_unknown_"


def _with_references(ctx: _Context, typed: pd.DataFrame) -> pd.DataFrame:
    """Add _unknown_<id> columns: the id where the referenced file lacks it, else null.

    Referential rules then expect these columns to be null, so a failure's
    samples are the orphan ids themselves. (Handing GX the referenced ids as a
    value set costs minutes: it copies the set through pydantic per metric.)
    """
    for column, kind in (("movie_id", "movies"), ("user_id", "users")):
        if column in typed.columns and kind in ctx.staged:
            known = typed[column].isin(ctx.staged[kind][column])
            typed[f"{UNKNOWN}{column}"] = typed[column].astype("Int64").where(~known & typed[column].notna())
    return typed


def _file_level_checks(ctx: _Context, raw: RawRead) -> list[CheckResult]:
    """Facts about the bytes that no column holds: parser rejects, line endings."""
    results = []
    encoding = [r for r in raw.rejects if r[1] == "INVALID ENCODING"]
    if encoding:  # a mis-encoded file is wrong as a whole, however few lines show it
        results.append(
            _rejects_check(
                raw,
                encoding,
                "file_is_in_declared_encoding",
                f"every line is valid {raw.raw_file.encoding} text (the declared encoding)",
                "critical",
            )
        )
    malformed = [r for r in raw.rejects if r[1] != "INVALID ENCODING"]
    if malformed:
        n = raw.n_rows + len(raw.rejects)
        check = _rejects_check(
            raw,
            malformed,
            "file_parses_as_csv",
            "every line is well-formed CSV with the header's number of fields",
            "warning",
        )
        if _too_many(len(malformed), n, ctx.max_bad_fraction):
            _escalate(check, n)
        else:
            check.quarantined = len(malformed)
            ctx.quarantine.append(
                _quarantine_frame(
                    raw,
                    [int(r[0]) for r in malformed],
                    [check.rule] * len(malformed),
                    [str(r[3]).strip("\r\n") for r in malformed],
                )
            )
        results.append(check)
    if not raw.raw_file.quoted and raw.crlf:
        results.append(
            CheckResult(
                file=str(raw.path),
                suite=f"{raw.raw_file.kind}.structure",
                expectation="file_has_lf_line_endings",
                column=None,
                rule="lines end in LF as in the release; CRLF suggests the file was converted (read anyway)",
                severity="warning",
                success=False,
            )
        )
    return results


def _rejects_check(raw: RawRead, rejects: list, expectation: str, rule: str, severity: str) -> CheckResult:
    return CheckResult(
        file=str(raw.path),
        suite=f"{raw.raw_file.kind}.structure",
        expectation=expectation,
        column=None,
        rule=rule,
        severity=severity,
        success=False,
        element_count=raw.n_rows + len(raw.rejects),
        unexpected_count=len(rejects),
        samples=[f"{etype}: {msg}"[:200] for _, etype, msg, _ in rejects[:SAMPLE_SIZE]],
        lines=[int(line) for line, _, _, _ in rejects[:SAMPLE_SIZE]],
    )


def _run_section(
    ctx: _Context,
    raw: RawRead,
    frame: pd.DataFrame,
    suite: dict[str, Any],
    section: str,
    params: dict[str, Any],
    bad: dict[int, str],
    nulls: dict[int, list[tuple[str, str]]],
) -> list[CheckResult]:
    """Check one section; add the lines a quarantine rule sets aside to `bad`, and the
    values a null rule sets aside to `nulls`."""
    specs = [s for s in suite.get(section, []) if _applies(s, ctx.layout, params, frame)]
    if not specs:
        return []
    name = f"{suite['name']}.{section}"
    outcome = _gx_validate(ctx, raw.raw_file.kind, name, specs, frame, params, "SUMMARY", store=True)
    # GX does not return results in suite order: match them back by index.
    checks = {i: _to_check(raw, name, specs[i], r) for i, r in _indexed(outcome)}
    for i, check in checks.items():
        check.spec_index = i
        meta = specs[i].get("meta") or {}
        check.quarantine_rule = bool(meta.get("quarantine") or meta.get("null"))
        if section == "structure":  # the shape frame's one row is no line of the file
            check.lines, check.element_count, check.unexpected_count = [], None, None
    to_quarantine = []
    for i, check in checks.items():
        if check.success or not check.quarantine_rule:
            continue
        n = check.element_count or len(frame)
        if _too_many(check.unexpected_count or 0, n, ctx.max_bad_fraction):
            _escalate(check, n)
        else:
            to_quarantine.append(i)
    if to_quarantine:  # a second pass for every bad row's label, only where there are few
        full = _gx_validate(
            ctx, raw.raw_file.kind, name, [specs[i] for i in to_quarantine], frame, params, "COMPLETE", store=False
        )
        for j, result in _indexed(full):
            check = checks[to_quarantine[j]]
            found = result.result.get("unexpected_index_list") or []
            labels = [int(i) for i in found if isinstance(i, int | np.integer)]
            spec = specs[to_quarantine[j]]
            if (spec.get("meta") or {}).get("null"):
                for i in labels:
                    nulls.setdefault(i, []).append((spec["kwargs"]["column"], check.rule))
                check.nulled = len([i for i in labels if i not in bad])
                continue
            new = [i for i in labels if i not in bad]
            for i in new:
                bad[i] = check.rule
            check.quarantined = len(new)
    return [checks[i] for i in sorted(checks)]


def _indexed(outcome: Any) -> list[tuple[int, Any]]:
    return [(r.expectation_config.meta["spec_index"], r) for r in outcome.results]


def _gx_validate(
    ctx: _Context,
    kind: str,
    name: str,
    specs: list[dict[str, Any]],
    frame: pd.DataFrame,
    params: dict[str, Any],
    result_format: str,
    store: bool,
) -> Any:
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    suite = gx.ExpectationSuite(
        name=name,
        expectations=[
            get_expectation_impl(s["type"])(
                **_resolve(s["kwargs"], params), meta={**(s.get("meta") or {}), "spec_index": i}
            )
            for i, s in enumerate(specs)
        ],
    )
    asset_name = f"{kind}_{name.rsplit('.', 1)[-1]}" + ("" if store else "_rows")
    if asset_name not in ctx.definitions:  # a file's parts share one asset (and one Data Docs page)
        ctx.definitions[asset_name] = ctx.source.add_dataframe_asset(asset_name).add_batch_definition_whole_dataframe(
            "whole"
        )
    batch_definition = ctx.definitions[asset_name]
    fmt = {"result_format": result_format, "partial_unexpected_count": SAMPLE_SIZE}
    if not store:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(suite, expectation_parameters=params, result_format=fmt)
    # Stored through a validation definition, so Data Docs can render it.
    if name not in ctx.definitions:
        ctx.definitions[name] = ctx.gx.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=ctx.gx.suites.add(suite))
        )
    return ctx.definitions[name].run(
        batch_parameters={"dataframe": frame}, expectation_parameters=params, result_format=fmt
    )


def _resolve(kwargs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Fill in a spec's $PARAMETERs, so results and Data Docs show the values checked."""
    return {k: params[v["$PARAMETER"]] if isinstance(v, dict) and "$PARAMETER" in v else v for k, v in kwargs.items()}


def _too_many(bad: int, n: int, max_fraction: float) -> bool:
    """Too many bad rows to set aside: the file itself is wrong (separator, unit, encoding)."""
    return bad >= n or (bad > max_fraction * n and bad > ALWAYS_QUARANTINE)


def _escalate(check: CheckResult, n: int) -> None:
    share = (check.unexpected_count or 0) / max(n, 1)
    check.severity = "critical"
    check.rule += f" [{share:.1%} of rows break it: too many to quarantine, the file itself is suspect]"


def _to_check(raw: RawRead, suite_name: str, spec: dict[str, Any], result: Any) -> CheckResult:
    meta = spec.get("meta") or {}
    kwargs = spec["kwargs"]
    column = (
        meta.get("column")
        or kwargs.get("column")
        or (",".join(kwargs["column_list"]) if isinstance(kwargs.get("column_list"), list) else None)
    )
    check = CheckResult(
        file=str(raw.path),
        suite=suite_name,
        expectation=spec["type"],
        column=column,
        rule=meta.get("rule", spec["type"]),
        severity=meta.get("severity", "critical"),
        success=bool(result.success),
    )
    info = result.result or {}
    check.element_count = info.get("element_count")
    check.unexpected_count = info.get("unexpected_count")
    if result.exception_info and result.exception_info.get("raised_exception"):
        check.success = False
        check.severity = "critical"
        check.samples = [str(result.exception_info.get("exception_message", ""))[:300]]
    elif not check.success:
        if "observed_value" in info:
            check.samples = [str(info["observed_value"])[:300]]
        check.samples += [_short(v) for v in info.get("partial_unexpected_list", [])]
        check.lines = [int(i) for i in info.get("partial_unexpected_index_list", []) if isinstance(i, int | np.integer)]
    return check


def _quarantine_rows(raw: RawRead, text: pd.DataFrame, bad: dict[int, str]) -> pd.DataFrame:
    """Quarantine rows for the lines in `bad`, their text rejoined with the file's separator."""
    lines = sorted(bad)
    rows = text.loc[lines, [c for c in text.columns if c != "_n_fields"]]
    records = rows.astype("string").fillna("").agg(raw.raw_file.delimiter.join, axis=1) if len(rows) else []
    return _quarantine_frame(raw, lines, [bad[i] for i in lines], list(records))


def _quarantine_frame(raw: RawRead, lines: list[int], rules: list[str], records: list[str]) -> pd.DataFrame:
    """The rows of dq_quarantine for one file (run id and time are added when recorded)."""
    return pd.DataFrame(
        {"file": str(raw.path), "kind": raw.raw_file.kind, "line": lines, "rule": rules, "record": records}
    )


def _parameters(ctx: _Context, raw_file: RawFile) -> dict[str, Any]:
    layout = ctx.layout
    now = datetime.now(UTC)
    columns = [c for c in raw_file.columns if c != "-"]
    params: dict[str, Any] = {
        "columns": [*columns, "_n_fields", "_n_rows"],
        "n_fields": [len(raw_file.columns)],
        "user_id_regex": ID_REGEX[layout.user_id_type],
        "movie_id_regex": ID_REGEX[layout.movie_id_type],
        "timestamp_regex": TIMESTAMP_REGEX[layout.timestamp_format],
        "rating_min": layout.scale.min,
        "rating_max": layout.scale.max,
        "min_timestamp": EARLIEST_TIMESTAMP,
        # a later time is not a time at all: milliseconds, or a clock gone wrong
        "max_plausible_timestamp": int((max(now, ctx.logical_date) + timedelta(days=1)).timestamp()),
        "logical_timestamp": int(ctx.logical_date.timestamp()),
    }
    values = layout.scale.values()
    if values is not None:
        params["rating_values"] = values
    if layout.genres:
        genre = "|".join(re.escape(g) for g in layout.genres)
        sep = re.escape(layout.genre_separator)
        params["genre_regex"] = f"^(?:{genre})(?:{sep}(?:{genre}))*$"
    if raw_file.kind in ctx.previous_counts:
        params["min_rows"] = math.ceil(ctx.previous_counts[raw_file.kind] * (1 - MAX_ROW_DROP))
    return params


def _applies(spec: dict[str, Any], layout: Layout, params: dict[str, Any], frame: pd.DataFrame) -> bool:
    """Layout-specific rules apply to their layouts; rules needing an absent file or column are skipped."""
    meta = spec.get("meta") or {}
    if meta.get("layouts") and layout.name not in meta["layouts"]:
        return False
    kwargs = spec["kwargs"]
    needed = [v["$PARAMETER"] for v in kwargs.values() if isinstance(v, dict) and "$PARAMETER" in v]
    column = kwargs.get("column")
    return all(n in params for n in needed) and (column is None or column in frame.columns)


def _short(value: Any) -> str:
    return str(value)[:120]


def _quiet(context: Any) -> None:
    """GX draws progress bars per validation; in logs they are noise."""
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # pragma: no cover - older/newer GX without the knob
        log.debug("could not switch off GX progress bars", exc_info=True)


def _add_docs_site(context: Any, docs_dir: Path) -> None:
    for site in list(context.get_site_names()):
        context.delete_data_docs_site(site)  # the ephemeral context's default site is a temp folder
    context.add_data_docs_site(
        site_name="run",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )


def _build_docs(context: Any, results: list[CheckResult], docs_dir: Path) -> str | None:
    """Render the run's validation results as HTML; point each failed check at its page."""
    try:
        if docs_dir.exists():
            shutil.rmtree(docs_dir)
        context.build_data_docs(site_names=["run"])
    except Exception:  # Data Docs are a convenience: never fail a run on rendering
        log.warning("could not build Data Docs in %s", docs_dir, exc_info=True)
        return None
    for check in results:
        if check.success:
            continue
        kind, _, section = check.suite.partition(".")
        pages = sorted((docs_dir / "validations" / kind / section).rglob("*.html"))
        check.docs_url = (pages[-1] if pages else docs_dir / "index.html").resolve().as_uri()
    index = docs_dir / "index.html"
    return index.resolve().as_uri() if index.exists() else None
