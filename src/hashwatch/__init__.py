"""hashwatch: hash media, keep verified hash lists, and match uploads against them."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
