"""driftline — streaming ML monitoring.

Services that publish events import only this package.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
