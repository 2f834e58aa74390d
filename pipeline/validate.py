"""Validate raw files with the Great Expectations suites kept in expectations/.

Each suite has three sections, run in order on one file:
- structure: columns and fields per line, on the text as read;
- values: nulls, number formats and allowed sets, on the text as read, so a
  failure's samples show exactly what is in the file;
- content: uniqueness, ranges and references to other files, on typed values.
A file whose structure fails is not checked further (the rest would be noise).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import great_expectations as gx
import pandas as pd
from great_expectations.expectations.registry import get_expectation_impl

from pipeline.config import EXPECTATIONS_DIR
from pipeline.datasets.layouts import Layout, RawFile
from pipeline.datasets.read import RawRead, RawReadError, read_raw, stage_typed

log = logging.getLogger(__name__)

SECTIONS = ("structure", "values", "content")
# Movies and users first: ratings, tags and links are checked against their ids.
KIND_ORDER = ("movies", "users", "links", "tags", "ratings")
EARLIEST_TIMESTAMP = 788_918_400  # 1995-01-01, before any MovieLens rating
SAMPLE_SIZE = 5


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

    @property
    def blocking(self) -> bool:
        return not self.success and self.severity == "critical"

    def message(self) -> str:
        where = f" column '{self.column}'" if self.column else ""
        count = (
            f" {self.unexpected_count} of {self.element_count} rows break it;"
            if self.unexpected_count is not None
            else ""
        )
        sample = f" e.g. {self.samples}" if self.samples else ""
        at = f" at line(s) {self.lines}" if self.lines else ""
        return f"{self.file}:{where} rule '{self.rule}' ({self.expectation}) failed:{count}{sample}{at}"


@dataclass
class ValidationReport:
    layout: str
    results: list[CheckResult]
    staged: dict[str, pd.DataFrame]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success]

    @property
    def passed(self) -> bool:
        return not any(r.blocking for r in self.results)


class DataQualityError(RuntimeError):
    """Raw data broke critical rules; the run must stop before publishing."""

    def __init__(self, failures: list[CheckResult]) -> None:
        lines = "\n".join(f"- {f.message()}" for f in failures)
        super().__init__(f"{len(failures)} data-quality rule(s) failed:\n{lines}")
        self.failures = failures


def load_suite(kind: str) -> dict[str, Any]:
    """The suite for one raw file kind, as stored in expectations/<kind>.json."""
    return json.loads((EXPECTATIONS_DIR / f"{kind}.json").read_text())


def validate_folder(folder: Path, layout: Layout, now: datetime | None = None) -> ValidationReport:
    """Read and check every file of `layout` present in `folder`; stage the typed frames."""
    now = now or datetime.now(UTC)
    con = duckdb.connect()
    context = gx.get_context(mode="ephemeral")
    _quiet(context)
    source = context.data_sources.add_pandas("raw_files")
    results: list[CheckResult] = []
    staged: dict[str, pd.DataFrame] = {}
    files = sorted(layout.files, key=lambda f: KIND_ORDER.index(f.kind))
    for raw_file in files:
        path = Path(folder) / raw_file.name
        if not raw_file.required and not path.exists():
            log.info("optional file %s absent; skipped", path)
            continue
        log.info("validating %s against expectations/%s.json", path, raw_file.kind)
        file_results, typed = _validate_file(con, source, folder, layout, raw_file, staged, now)
        results.extend(file_results)
        if typed is not None:
            staged[raw_file.kind] = typed
    con.close()
    return ValidationReport(layout.name, results, staged)


def _validate_file(
    con: duckdb.DuckDBPyConnection,
    source: Any,
    folder: Path,
    layout: Layout,
    raw_file: RawFile,
    staged: dict[str, pd.DataFrame],
    now: datetime,
) -> tuple[list[CheckResult], pd.DataFrame | None]:
    path = str(Path(folder) / raw_file.name)
    try:
        raw = read_raw(con, folder, raw_file)
    except RawReadError as exc:
        return [CheckResult(path, raw_file.kind, "file_is_readable", None, exc.reason, "critical", False)], None
    results = [_rejects_result(raw)] if raw.rejects else []
    suite = load_suite(raw_file.kind)
    params = _parameters(layout, raw_file, staged, now)
    typed = None
    for section in SECTIONS:
        if section == "content":
            typed = stage_typed(con, layout, raw_file.kind)
        frame = typed if section == "content" else raw.frame
        section_results = _run_section(source, raw, frame, suite, section, layout, params)
        results.extend(section_results)
        if section == "structure" and any(r.blocking for r in section_results):
            break
    return results, typed


def _run_section(
    source: Any,
    raw: RawRead,
    frame: pd.DataFrame,
    suite: dict[str, Any],
    section: str,
    layout: Layout,
    params: dict[str, Any],
) -> list[CheckResult]:
    specs = [s for s in suite[section] if _applies(s, layout, params)]
    if not specs:
        return []
    name = f"{suite['name']}.{section}"
    gx_suite = gx.ExpectationSuite(
        name=name,
        expectations=[
            get_expectation_impl(s["type"])(**s["kwargs"], meta={**(s.get("meta") or {}), "spec_index": i})
            for i, s in enumerate(specs)
        ],
    )
    asset = source.add_dataframe_asset(f"{raw.raw_file.kind}_{section}")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame})
    outcome = batch.validate(
        gx_suite,
        expectation_parameters=params,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE},
    )
    # GX does not return results in suite order: match them back by index.
    return [_to_check(raw, name, specs[r.expectation_config.meta["spec_index"]], r) for r in outcome.results]


def _to_check(raw: RawRead, suite_name: str, spec: dict[str, Any], result: Any) -> CheckResult:
    meta = spec.get("meta") or {}
    kwargs = spec["kwargs"]
    column = kwargs.get("column") or (
        ",".join(kwargs["column_list"]) if isinstance(kwargs.get("column_list"), list) else None
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
        check.samples = [str(result.exception_info.get("exception_message", ""))[:300]]
    elif not check.success:
        if "observed_value" in info:
            check.samples = [str(info["observed_value"])[:300]]
        check.samples += [_short(v) for v in info.get("partial_unexpected_list", [])]
        check.lines = [raw.line_of(i) for i in info.get("partial_unexpected_index_list", []) if isinstance(i, int)]
    return check


def _rejects_result(raw: RawRead) -> CheckResult:
    return CheckResult(
        file=str(raw.path),
        suite=f"{raw.raw_file.kind}.structure",
        expectation="file_parses_as_rfc4180_utf8_csv",
        column=None,
        rule="every line is valid UTF-8 CSV with the header's number of fields",
        severity="critical",
        success=False,
        unexpected_count=len(raw.rejects),
        samples=[f"{etype}: {msg}"[:200] for _, etype, msg in raw.rejects[:SAMPLE_SIZE]],
        lines=[int(line) for line, _, _ in raw.rejects[:SAMPLE_SIZE]],
    )


def _parameters(layout: Layout, raw_file: RawFile, staged: dict[str, pd.DataFrame], now: datetime) -> dict[str, Any]:
    genre = "|".join(re.escape(g) for g in layout.genres)
    sep = re.escape(layout.genre_separator)
    params: dict[str, Any] = {
        "columns": [*raw_file.columns, "_n_fields"],
        "n_fields": [len(raw_file.columns)],
        "rating_values": list(layout.rating_values),
        "genre_regex": f"^(?:{genre})(?:{sep}(?:{genre}))*$",
        "min_timestamp": EARLIEST_TIMESTAMP,
        "max_timestamp": int(now.timestamp()),
    }
    if "movies" in staged:
        params["movie_ids"] = staged["movies"]["movie_id"].dropna().astype("int64").tolist()
    if "users" in staged:
        params["user_ids"] = staged["users"]["user_id"].dropna().astype("int64").tolist()
    return params


def _applies(spec: dict[str, Any], layout: Layout, params: dict[str, Any]) -> bool:
    """Layout-specific rules apply to their layouts; rules needing an absent file are skipped."""
    layouts = (spec.get("meta") or {}).get("layouts")
    if layouts and layout.name not in layouts:
        return False
    needed = [v["$PARAMETER"] for v in spec["kwargs"].values() if isinstance(v, dict) and "$PARAMETER" in v]
    return all(n in params for n in needed)


def _short(value: Any) -> str:
    return str(value)[:120]


def _quiet(context: Any) -> None:
    """GX draws progress bars per validation; in logs they are noise."""
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # pragma: no cover - older/newer GX without the knob
        log.debug("could not switch off GX progress bars", exc_info=True)
