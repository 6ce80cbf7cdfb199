"""The hub's error hierarchy; third-party errors are translated at the boundary with ``raise ... from``.

::

    HubError                      every error the hub raises on purpose
    ├── ConfigError               settings or source configuration is invalid (lists every problem)
    ├── InvalidIdentifier         an ID number or credit code is wrong (says which part, never echoes it)
    ├── AccessRefused             a role asked for without what it needs (the raw role without a reason)
    ├── SourceError               a department system could not be read
    │   ├── SourceUnavailable     unreachable or timed out: retry later
    │   ├── SchemaDrift           the source's answer changed shape
    │   └── UnreadableText        connectors.encodings: a whole file is not text in its encoding
    ├── PipelineError             a pipeline step could not complete
    │   ├── PipelineBusy          another run holds the run lock (names it: step, run, pid, host, start)
    │   ├── StorageFault          the working database or a disk failed: the cause and what to do
    │   │   ├── WorkDatabaseBusy      another process has the working DuckDB file open
    │   │   ├── WorkDatabaseDamaged   the working DuckDB file is truncated or not a DuckDB file
    │   │   └── DiskFull              no space left where the step writes
    │   ├── PublishError          a snapshot could not be written or switched
    │   ├── QualityGateFailed     publication refused by the quality gate (lists every reason)
    │   ├── DecisionLogError      warehouse.decisions: the metadata database could not record or give back decisions
    │   └── RebuildRefused        hub.recovery: a rebuild would do harm (file in use, or whole without force)
    ├── SnapshotError             no usable published snapshot
    │   └── SnapshotDamaged       a published version's files do not match its manifest
    ├── DecisionError             quality.quarantine: a steward's decision on a quarantine entry refused
    ├── ConflictError             warehouse.conflicts: a conflict resolution refused
    ├── IdentityError             warehouse.identity_review: a steward's identity decision refused
    ├── RegistryError             exchange_api.registry: a department, key, grant or purpose change refused
    ├── HubRequestError           exchange_api.client: the hub refused a client's request (status + code)
    ├── AnswerNotTrusted          exchange_api.client: an answer or event whose signature does not verify
    └── ApiError                  an exchange-API refusal: HTTP status + stable code
        ├── AuthError             401: signature, key, digest, time window or nonce
        │   └── SignatureRefused  exchange_api.request_signatures: the one refusal of a request's signature
        ├── Forbidden             403: not granted
        ├── PayloadTooLarge       413
        ├── RateLimited           429
        ├── InvalidRequest        exchange_api.errors: 422, the body is not a valid lookup
        │   ├── UnknownPurpose        exchange_api.purposes: the purpose is not in the catalogue
        │   └── PurposeNotForLibrary  exchange_api.purposes: the purpose may not be asked of this library
        ├── AsOfUnavailable       exchange_api.errors: 422, no history to answer "as of" a date
        ├── AuditUnavailable      exchange_api.errors: 503, the audit row can't be written
        └── ServiceUnavailable    exchange_api.errors: 503, no published snapshot (its code names the answer)

Classes defined outside this module name their module first; ``tests/hub/test_errors_tree.py`` walks
every production module's subclasses of HubError against this drawing, both ways.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(HubError):
    """Configuration is invalid; ``problems`` lists every one found, not just the first."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class InvalidIdentifier(HubError):
    """An ID number or credit code is wrong; ``part`` names what (length, format, date, region, check digit)."""

    def __init__(self, kind: str, part: str, detail: str = ""):
        self.kind = kind
        self.part = part
        self.detail = detail
        super().__init__(f"invalid {kind}: {part}" + (f" ({detail})" if detail else ""))


class AccessRefused(HubError, PermissionError):
    """A role asked for without what it needs; still a ``PermissionError`` for callers that catch that."""


class SourceError(HubError):
    """A department system could not be read."""


class SourceUnavailable(SourceError):
    """The source is unreachable or timed out; a retry may succeed."""


class SchemaDrift(SourceError):
    """The source's answer no longer has the expected shape."""


class PipelineError(HubError):
    """A pipeline step could not complete."""


class PipelineBusy(PipelineError):
    """Another run holds the lock of ``scope``; ``holder`` says who (pid, host, started_at, run_id, step)."""

    def __init__(self, scope: str, holder: dict):
        self.scope, self.holder = scope, dict(holder)
        who = (f"{holder.get('step', 'a run')} (run {holder.get('run_id', '?')}, pid {holder.get('pid', '?')} "
               f"on {holder.get('host', '?')}, started {holder.get('started_at', '?')})") if holder else "another run"
        super().__init__(f"{who} is running and holds the {scope} lock; this run stopped before extracting or "
                         "writing anything: wait for that one to end, then run again")


class StorageFault(PipelineError):
    """A file or disk the pipeline uses failed; ``cause`` says how and ``remedy`` what to do."""

    summary = "storage failed"
    remedy = "check that file and the disk it is on, then run again"

    def __init__(self, what: str, cause: str):
        self.what, self.cause = what, cause
        super().__init__(f"{self.summary} ({what}): {cause}. What to do: {self.remedy}")


class WorkDatabaseBusy(StorageFault):
    summary = "the working database is open in another process"
    remedy = ("wait until that process ends (hub run and the Airflow tasks take the run lock; hub commands that "
              "record decisions open the file briefly), then run again")


class WorkDatabaseDamaged(StorageFault):
    summary = "the working database is damaged"
    remedy = ("move the file aside and rebuild the working database from the landings (README, recovery); "
              "the published snapshot keeps serving meanwhile")


class DiskFull(StorageFault):
    summary = "the disk is full"
    remedy = ("free space on that disk (or point HUB_DATA_DIR at a larger one), then run again; what this step "
              "had written was removed and the previous snapshot keeps serving")


class PublishError(PipelineError):
    """A snapshot could not be written or switched; the previous one keeps serving."""


class QualityGateFailed(PipelineError):
    """Publication refused by the quality gate; ``reasons`` says why. The previous snapshot keeps serving."""

    def __init__(self, reasons: list[str]):
        self.reasons = list(reasons)
        super().__init__("publication refused by the quality gate; the previous snapshot keeps serving: "
                         + "; ".join(self.reasons))


class SnapshotError(HubError):
    """No usable published snapshot."""


class SnapshotDamaged(SnapshotError):
    """A published version's files do not match its manifest; ``problems`` names each file and what is wrong."""

    def __init__(self, version: str, problems: list[str]):
        self.version, self.problems = version, list(problems)
        super().__init__(f"snapshot {version} is damaged and is not served: " + "; ".join(self.problems))


class ApiError(HubError):
    """A refusal by the exchange API, with its HTTP status and a stable machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None):
        if code:
            self.code = code
        super().__init__(message)


class AuthError(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
