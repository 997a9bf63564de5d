"""The daily data-retention run (platform/retention.py), enqueued by the reconciler as
"platform.tasks.run_retention"."""

from dataclasses import asdict

from faka.platform import retention


def run_retention() -> dict:
    return asdict(retention.run())
