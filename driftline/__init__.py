"""driftline — streaming ML monitoring.

Services that publish events import only this package.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["KafkaPublisher", "PublishError", "PublishReport", "Publisher", "__version__"]


def __getattr__(name: str) -> object:
    # The SDK is imported on first use, so `import driftline` stays light for the CLI.
    if name in ("Publisher", "KafkaPublisher", "PublishError", "PublishReport"):
        from driftline import publisher

        return getattr(publisher, name)
    raise AttributeError(f"module 'driftline' has no attribute {name!r}")
