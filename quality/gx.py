"""Great Expectations: the hub's custom expectations, suites and results as GX objects, and the Data Docs.

Importing this module registers the custom expectations GX lacks: GB 11643 resident ID numbers,
GB 32100 credit codes, GB/T 2260 region codes, the ID number against the record's birth date and
sex, licence holders by holder type, licence status against validity, and (evaluated by the hub
over the golden tables) cross-library references and agreement between departments. Each map
expectation has a pandas implementation, so GX itself can validate a batch with the same suite the
gate evaluates vectorised; the tests hold the two to the same answers.

GX is slow to import (seconds): the gate's stage step never imports this module; the report does.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import numpy as np
import pandas as pd
import pyarrow as pa

import great_expectations as gx
from great_expectations.compatibility import pydantic
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_pair_condition_partial,
    multicolumn_condition_partial,
)

from quality.rules import Rule, Suite
from schemas.ids import is_valid_credit_code, is_valid_resident_id, normalise, validate_resident_id
from schemas.licences import IN_FORCE_STATUSES
from schemas.regions import is_known

logging.getLogger("great_expectations").setLevel(logging.WARNING)

HUB = "hub"  # the datasource name in results: batches come from the hub's landings and golden tables


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _ric(value: Any) -> str | None:
    """The normalised 18-character number, or None when invalid."""
    text = _text(value)
    if text is None:
        return None
    try:
        return validate_resident_id(text)
    except Exception:  # noqa: BLE001 - InvalidIdentifier: not a valid number
        return None


# --- column map expectations -------------------------------------------------------------------


class ColumnValuesValidResidentId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_valid_resident_id"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **_kwargs: Any) -> pd.Series:
        return column.map(lambda v: is_valid_resident_id(_text(v))).astype(bool)


class ExpectColumnValuesToBeValidResidentId(ColumnMapExpectation):
    """Expect column values to be resident ID numbers valid under GB 11643 (check digit, birth date, region)."""

    map_metric = "column_values.hub_valid_resident_id"
    success_keys = ("mostly",)


class ColumnValuesValidCreditCode(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_valid_credit_code"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **_kwargs: Any) -> pd.Series:
        return column.map(lambda v: is_valid_credit_code(_text(v))).astype(bool)


class ExpectColumnValuesToBeValidCreditCode(ColumnMapExpectation):
    """Expect column values to be unified social credit codes valid under GB 32100 (MOD 31 check character)."""

    map_metric = "column_values.hub_valid_credit_code"
    success_keys = ("mostly",)


def _canonical(value: Any, valid: Any, norm: Any) -> bool:
    text = _text(value)
    if text is None or not valid(text):
        return True  # invalid values are the validity expectation's business
    return norm(text) == text and len(text) == 18


class ColumnValuesCanonicalResidentId(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_canonical_resident_id"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **_kwargs: Any) -> pd.Series:
        return column.map(lambda v: _canonical(v, is_valid_resident_id, normalise)).astype(bool)


class ExpectColumnValuesToBeCanonicalResidentId(ColumnMapExpectation):
    """Expect valid resident ID numbers to be typed in canonical form (18 ASCII characters, upper-case X)."""

    map_metric = "column_values.hub_canonical_resident_id"
    success_keys = ("mostly",)


class ColumnValuesCanonicalCreditCode(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_canonical_credit_code"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **_kwargs: Any) -> pd.Series:
        return column.map(lambda v: _canonical(v, is_valid_credit_code, normalise)).astype(bool)


class ExpectColumnValuesToBeCanonicalCreditCode(ColumnMapExpectation):
    """Expect valid credit codes to be typed in canonical form (18 ASCII characters, upper case)."""

    map_metric = "column_values.hub_canonical_credit_code"
    success_keys = ("mostly",)


class ColumnValuesValidRegionCode(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_valid_region_code"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **_kwargs: Any) -> pd.Series:
        return column.map(lambda v: is_known(str(v))).astype(bool)


class ExpectColumnValuesToBeValidRegionCode(ColumnMapExpectation):
    """Expect column values to be GB/T 2260 administrative region codes (of any year)."""

    map_metric = "column_values.hub_valid_region_code"
    success_keys = ("mostly",)


# --- column pair and multicolumn expectations ---------------------------------------------------

_EITHER = "either_value_is_missing"


class ColumnPairIdBirthDate(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.hub_id_birth_date"

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **_kwargs: Any) -> pd.Series:
        def agrees(number: Any, born: Any) -> bool:
            norm = _ric(number)
            if norm is None:
                return True  # an invalid number is the validity expectation's business
            return norm[6:14] == pd.Timestamp(born).strftime("%Y%m%d")

        return pd.Series([agrees(a, b) for a, b in zip(column_A, column_B)], index=column_A.index)


class ExpectColumnPairValuesToMatchIdBirthDate(ColumnPairMapExpectation):
    """Expect the birth date encoded in the resident ID number (column A) to equal the birth date (column B)."""

    map_metric = "column_pair_values.hub_id_birth_date"
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = _EITHER
    success_keys = ("mostly", "ignore_row_if")


class ColumnPairIdGender(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.hub_id_gender"

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **_kwargs: Any) -> pd.Series:
        def agrees(number: Any, gender: Any) -> bool:
            norm = _ric(number)
            if norm is None or str(gender) not in ("1", "2"):
                return True
            return ("1" if int(norm[16]) % 2 else "2") == str(gender)

        return pd.Series([agrees(a, b) for a, b in zip(column_A, column_B)], index=column_A.index)


class ExpectColumnPairValuesToMatchIdGender(ColumnPairMapExpectation):
    """Expect the sex encoded in the resident ID number (column A, odd sequence: male) to equal the GB/T 2261.1 code (column B)."""

    map_metric = "column_pair_values.hub_id_gender"
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = _EITHER
    success_keys = ("mostly", "ignore_row_if")


class ColumnPairHolderId(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.hub_holder_id"

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **_kwargs: Any) -> pd.Series:
        def valid(kind: Any, holder: Any) -> bool:
            if kind == "person":
                return is_valid_resident_id(_text(holder))
            if kind == "legal_person":
                return is_valid_credit_code(_text(holder))
            return True  # an unknown holder type is the code-table expectation's business

        return pd.Series([valid(a, b) for a, b in zip(column_A, column_B)], index=column_A.index)


class ExpectColumnPairValuesToBeValidHolderId(ColumnPairMapExpectation):
    """Expect the holder ID (column B) to be a valid resident ID number or credit code according to the holder type (column A)."""

    map_metric = "column_pair_values.hub_holder_id"
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = _EITHER
    success_keys = ("mostly", "ignore_row_if")


class MulticolumnLicenceValidity(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.hub_licence_validity"
    condition_value_keys = ("as_of",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, as_of: str, **_kwargs: Any) -> pd.Series:
        status, valid_to = column_list.columns[:2]
        limit = pd.Timestamp(as_of)
        ended = pd.to_datetime(column_list[valid_to]) < limit
        return ~(column_list[status].isin(IN_FORCE_STATUSES) & ended.fillna(False))


class ExpectMulticolumnLicenceStatusToAgreeWithValidity(MulticolumnMapExpectation):
    """Expect a licence whose validity ended (valid_to before as_of) not to be marked issued or renewed."""

    map_metric = "multicolumn_values.hub_licence_validity"
    as_of: str = pydantic.Field(description="Reference date (ISO), e.g. the data's as-of date")
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"
    success_keys = ("mostly", "ignore_row_if", "as_of")


# --- shared-table expectations (evaluated by the hub with DuckDB over the golden tables) -----------


class _HubEvaluated(ColumnMapMetricProvider):
    condition_metric_name = "column_values.hub_evaluated_over_golden_tables"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **_kwargs: Any) -> pd.Series:
        raise NotImplementedError("evaluated by the hub over the golden tables and staging (quality.tables)")


class ExpectColumnValuesToReferenceLibrary(ColumnMapExpectation):
    """Expect every value to exist as a key of ``library`` (a status event's licence), or of the library ``by`` names (a licence holder)."""

    map_metric = "column_values.hub_evaluated_over_golden_tables"
    library: Optional[str] = None
    by: Optional[str] = None
    libraries: Dict[str, str] = pydantic.Field(default_factory=dict)
    success_keys = ("mostly",)


class ExpectColumnValuesToAgreeWithReferenceDepartment(ColumnMapExpectation):
    """Expect the value every department gives a record to agree with the reference department's value."""

    map_metric = "column_values.hub_evaluated_over_golden_tables"
    reference: str = ""
    compatible: Dict[str, List[str]] = pydantic.Field(default_factory=dict)
    success_keys = ("mostly",)


class ExpectColumnValuesToAgreeWithLibrary(ColumnMapExpectation):
    """Expect the value to agree with a field of another library, joined on a key held by this record."""

    map_metric = "column_values.hub_evaluated_over_golden_tables"
    library: str = ""
    key: str = ""
    field: str = ""
    success_keys = ("mostly",)


# --- suites, results, docs ----------------------------------------------------------------------


def configuration(rule: Rule) -> ExpectationConfiguration:
    return ExpectationConfiguration(type=rule.expectation, kwargs=dict(rule.kwargs), meta=rule.meta)


def gx_suite(suite: Suite) -> gx.ExpectationSuite:
    """The suite as a GX ``ExpectationSuite`` (department and hub rules alike)."""
    out = gx.ExpectationSuite(name=suite.name, meta={"kind": suite.kind, "subject": suite.subject,
                                                     "library": suite.library, **dict(suite.meta)})
    for rule in suite.rules:
        out.add_expectation_configuration(configuration(rule))
    return out


def suite_from_results(name: str, results: list[dict]) -> gx.ExpectationSuite:
    """A GX suite rebuilt from the configurations a stored result carries."""
    out = gx.ExpectationSuite(name=name)
    for r in results:
        cfg = r["expectation_config"]
        out.add_expectation_configuration(ExpectationConfiguration(type=cfg["type"], kwargs=cfg["kwargs"],
                                                                   meta=cfg.get("meta") or {}))
    return out


def validation_result(stored: dict, run_time: dt.datetime) -> ExpectationSuiteValidationResult:
    """A stored (GX-shaped) suite result as a GX ``ExpectationSuiteValidationResult``."""
    results = [ExpectationValidationResult(
        success=r["success"],
        expectation_config=ExpectationConfiguration(type=r["expectation_config"]["type"],
                                                    kwargs=r["expectation_config"]["kwargs"],
                                                    meta=r["expectation_config"].get("meta") or {}),
        result=r["result"],
        exception_info={"raised_exception": False, "exception_traceback": None, "exception_message": None},
    ) for r in stored["results"]]
    meta = stored.get("meta") or {}
    batch = meta.get("batch") or {}
    run_id = meta.get("run_id") or "run"
    return ExpectationSuiteValidationResult(
        success=stored["success"], results=results, suite_name=stored["suite_name"],
        statistics=stored["statistics"],
        meta={"great_expectations_version": gx.__version__,
              "run_id": RunIdentifier(run_name=run_id, run_time=run_time),
              "validation_time": run_time,
              "active_batch_definition": {"datasource_name": HUB, "data_connector_name": "hub",
                                          "data_asset_name": batch.get("source") or batch.get("table") or stored["suite_name"],
                                          "batch_identifiers": {"run_id": run_id}},
              "batch_spec": {k: v for k, v in batch.items() if k != "held"},
              "batch_markers": {"engine": meta.get("engine", "hub")},
              "hub_batch": batch},
    )


class DataDocs:
    """A file GX context under ``project_dir`` whose Data Docs site is ``site_dir``."""

    SITE = "hub_site"

    def __init__(self, project_dir: Path, site_dir: Path):
        project_dir.mkdir(parents=True, exist_ok=True)
        site_dir.mkdir(parents=True, exist_ok=True)
        self.site_dir = site_dir
        self.context = gx.get_context(mode="file", project_root_dir=str(project_dir))
        config = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
                  "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
                  "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
        sites = self.context.list_data_docs_sites()
        if self.SITE not in sites:
            self.context.add_data_docs_site(self.SITE, config)
        for other in [s for s in sites if s != self.SITE]:
            self.context.delete_data_docs_site(other)

    def add(self, stored: dict, run_time: dt.datetime, batch_name: str) -> ValidationResultIdentifier:
        """Store one suite result (and its suite) in the context."""
        suite = suite_from_results(stored["suite_name"], stored["results"])
        self.context.suites.add_or_update(suite)
        result = validation_result(stored, run_time)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=stored["suite_name"]),
            run_id=RunIdentifier(run_name=(stored.get("meta") or {}).get("run_id") or "run", run_time=run_time),
            batch_identifier=batch_name)
        self.context.validation_results_store.set(key, result)
        return key

    def build(self, keys: Iterable[ValidationResultIdentifier]) -> Path:
        """Render the given results (and their suites) and the index page."""
        keys = list(keys)
        suites = {k.expectation_suite_identifier.name for k in keys}
        resources = [*keys, *(ExpectationSuiteIdentifier(name=s) for s in sorted(suites))]
        self.context.build_data_docs(site_names=[self.SITE], resource_identifiers=resources)
        return self.site_dir / "index.html"


# --- GX as the engine (tests, and expectation types the gate has no vectorised form of) -------------


def validate_with_gx(suite: Suite, frame: pd.DataFrame, rules: Iterable[Rule] | None = None) -> ExpectationSuiteValidationResult:
    """Validate ``frame`` with GX's own pandas engine (an ephemeral context), complete results."""
    context = gx.get_context(mode="ephemeral")
    name = f"hub-{uuid.uuid4().hex[:8]}"
    batch = context.data_sources.add_pandas(name).add_dataframe_asset("batch").add_batch_definition_whole_dataframe("all")
    gx_rules = gx.ExpectationSuite(name=suite.name)
    for rule in rules if rules is not None else suite.rules:
        gx_rules.add_expectation_configuration(configuration(rule))
    gx_rules = context.suites.add(gx_rules)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=gx_rules))
    return definition.run(batch_parameters={"dataframe": frame},
                          result_format={"result_format": "COMPLETE", "unexpected_index_column_names": None})


def unexpected_rows(rule: Rule, table: pa.Table) -> np.ndarray:
    """The rows GX finds unexpected for one rule, as a boolean mask (the gate's fallback engine)."""
    suite = Suite("fallback", "source", "fallback", "population", (rule,))
    result = validate_with_gx(suite, to_frame(table))
    (res,) = result.results
    if res.exception_info and res.exception_info.get("raised_exception"):
        raise RuntimeError(f"GX could not evaluate {rule.expectation}: {res.exception_info.get('exception_message')}")
    mask = np.zeros(table.num_rows, dtype=bool)
    index = res.result.get("unexpected_index_list") or []
    mask[[int(i) if not isinstance(i, dict) else int(next(iter(i.values()))) for i in index]] = True
    return mask


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas with plain object/datetime columns GX's pandas engine handles."""
    frame = table.to_pandas(types_mapper=None, date_as_object=True)
    for name in frame.columns:
        if pd.api.types.is_string_dtype(frame[name]) and not pd.api.types.is_object_dtype(frame[name]):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame
