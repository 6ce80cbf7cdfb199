"""The exchange API's own settings (``HUB_API_*``), beside the hub's ``Settings`` until they move into it."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Limits and policies of the exchange API; every default runs on one machine."""

    model_config = SettingsConfigDict(env_prefix="HUB_API_", extra="ignore")

    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body accepted (413 above).")
    max_batch: int = Field(default=100, ge=1, le=10_000, description="Most keys in one batch lookup (413 above).")
    rate_per_second: float = Field(default=500.0, gt=0, description="Default requests/s per department per API process.")
    burst: int = Field(default=1_000, ge=1, description="Default token-bucket depth per department per API process.")
    daily_quota: int = Field(default=1_000_000, ge=0, description="Default records per department per UTC day, all processes.")
    registry_cache_seconds: float = Field(
        default=1.0, ge=0, description="How long a process trusts cached keys, grants and limits (changes apply within it).")
    audit_group_max: int = Field(default=512, ge=1, description="Most audit rows committed in one group.")
    audit_writer: str = Field(default="auto", description="inline (event loop), thread, or auto (inline on SQLite).")
    audit_synchronous: str = Field(default="FULL", description="SQLite synchronous mode of the audit writer.")
    audit_checkpoint_rows: int = Field(
        default=1_000, ge=1, description="A signed checkpoint of the audit chain's head each time it passes a multiple of this.")
    audit_checkpoint_seconds: float = Field(
        default=60.0, gt=0, description="At most this long between a committed audit row and a checkpoint covering it.")
    sweep_detection: bool = Field(default=True, description="Detect and throttle departments that enumerate keys.")
    sweep_window_seconds: float = Field(default=60.0, gt=0, description="The window distinct keys are counted in.")
    sweep_min_keys: int = Field(
        default=500, ge=1, description="Distinct keys a department may look up in a window whatever its baseline.")
    sweep_baseline_factor: float = Field(
        default=10.0, ge=1, description="A window above this many times the department's own baseline is a sweep.")
    sweep_not_found_run: int = Field(default=100, ge=1, description="Not-found answers in a row that make a sweep.")
    sweep_throttle_seconds: float = Field(
        default=900.0, gt=0, description="How long a department found sweeping is refused (429 sweep_suspected).")
    citizen_portal_departments: str = Field(
        default="citizen_portal", description="Comma-separated departments allowed to read citizens' access logs.")
    timezone: str = Field(default="Asia/Shanghai", description="Whose calendar 'today' follows in verifications.")
    apply_instructions: str = Field(
        default="Ask the owning department to approve a grant (department, library, fields, purpose code, expiry); "
                "the hub operator records it with `hub grants add`. Unconditional fields need no grant.",
        description="Shown in the catalogue: how a department applies for more.")

    @property
    def citizen_portals(self) -> frozenset[str]:
        return frozenset(d.strip() for d in self.citizen_portal_departments.split(",") if d.strip())
