"""The cache's metrics through the OpenTelemetry API, read back with the SDK's in-memory reader.

Run: python examples/metrics.py (needs opentelemetry-sdk; a service uses its own exporter).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import vault
from vault.integrations.otel import instrument
from vault.testing import MemorySource


def main() -> None:
    reader = InMemoryMetricReader()
    with tempfile.TemporaryDirectory(prefix="credseal-metrics-") as tmp:
        store = vault.Vault(Path(tmp) / "vault", keys=vault.KeyRing([vault.Key.generate()]))
        with vault.FallbackCache(MemorySource(), store) as cache:
            instrument(cache, meter_provider=MeterProvider(metric_readers=[reader]))
            cache.save("company-42", {"registrationId": 4711})
            cache.get("company-42")
            data = reader.get_metrics_data()
            assert data is not None
            for metric in data.resource_metrics[0].scope_metrics[0].metrics:
                for point in metric.data.data_points:
                    labels = ",".join(f"{k}={v}" for k, v in (point.attributes or {}).items())
                    print(f"{metric.name}{{{labels}}} {point.value}")


if __name__ == "__main__":
    main()
