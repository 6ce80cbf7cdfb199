"""Operational metrics in the Prometheus text format (version 0.0.4): requests, refusals by reason, latency.

Counted per API process, as Prometheus expects of each scraped target; with several processes, scrape
each (or sum them). No label carries a department, a key or anything else a caller sent.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    inner = ",".join(f'{k}="{esc(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class Metrics:
    """Counters and a latency histogram per endpoint; cheap enough to update on every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.refusals: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list[float]] = {}  # endpoint -> [count per bucket..., +Inf count, sum]
        self.gauges: list[Callable[[], Iterable[str]]] = []

    def observe(self, endpoint: str, status: int, code: str | None, seconds: float) -> None:
        with self._lock:
            key = (endpoint, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            if status >= 400:
                refusal = (endpoint, code or "http_" + str(status))
                self.refusals[refusal] = self.refusals.get(refusal, 0) + 1
            hist = self.latency.get(endpoint)
            if hist is None:
                hist = self.latency[endpoint] = [0.0] * (len(BUCKETS) + 2)
            hist[bisect.bisect_left(BUCKETS, seconds)] += 1
            hist[-1] += seconds

    def render(self) -> str:
        lines = ["# HELP hub_api_requests_total Requests answered, by endpoint and HTTP status.",
                 "# TYPE hub_api_requests_total counter"]
        with self._lock:
            requests, refusals = dict(self.requests), dict(self.refusals)
            latency = {k: list(v) for k, v in self.latency.items()}
        for (endpoint, status), n in sorted(requests.items()):
            lines.append(f"hub_api_requests_total{_labels([('endpoint', endpoint), ('status', status)])} {n}")
        lines += ["# HELP hub_api_refusals_total Refused or failed requests, by endpoint and error code (the reason).",
                  "# TYPE hub_api_refusals_total counter"]
        for (endpoint, code), n in sorted(refusals.items()):
            lines.append(f"hub_api_refusals_total{_labels([('endpoint', endpoint), ('code', code)])} {n}")
        lines += ["# HELP hub_api_request_duration_seconds Time from request start to response, by endpoint.",
                  "# TYPE hub_api_request_duration_seconds histogram"]
        for endpoint, hist in sorted(latency.items()):
            cumulative = 0.0
            for bound, n in zip((*BUCKETS, float("inf")), hist[:-1]):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f"hub_api_request_duration_seconds_bucket{_labels([('endpoint', endpoint), ('le', le)])} "
                             f"{int(cumulative)}")
            lines.append(f"hub_api_request_duration_seconds_sum{_labels([('endpoint', endpoint)])} {hist[-1]:.6f}")
            lines.append(f"hub_api_request_duration_seconds_count{_labels([('endpoint', endpoint)])} {int(cumulative)}")
        for gauge in self.gauges:
            lines.extend(gauge())
        return "\n".join(lines) + "\n"
