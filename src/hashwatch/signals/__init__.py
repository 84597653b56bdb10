"""Signal types: the kinds of hash hashwatch can compute, store and match.

Built-in types register through the same `register` call a third-party package uses; packages
can also declare an entry point in the `hashwatch.signal_types` group naming a SignalType class.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from hashwatch.errors import InvalidHash, UnknownSignalType
from hashwatch.signals.base import (
    BytesSignalType,
    ExactDigestSignalType,
    PixelSignalType,
    SignalType,
)
from hashwatch.signals.exact import MD5, SHA1, SHA256
from hashwatch.signals.pdq import PDQ

__all__ = [
    "BytesSignalType",
    "ExactDigestSignalType",
    "PixelSignalType",
    "SignalType",
    "all_signal_types",
    "get_signal_type",
    "parse_typed_value",
    "register",
]

_REGISTRY: dict[str, type[SignalType]] = {}
_plugins_loaded = False


def register(signal_type: type[SignalType]) -> type[SignalType]:
    """Make a signal type available by its name. Usable as a class decorator."""
    existing = _REGISTRY.get(signal_type.name)
    if existing is not None and existing is not signal_type:
        raise ValueError(f"signal type name {signal_type.name!r} is already taken by {existing!r}")
    _REGISTRY[signal_type.name] = signal_type
    return signal_type


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry_point in entry_points(group="hashwatch.signal_types"):
        register(entry_point.load())


def get_signal_type(name: str) -> type[SignalType]:
    """The signal type called `name` (case and surrounding space ignored)."""
    _load_plugins()
    key = name.strip().lower()
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownSignalType(f"unknown signal type {name!r}; known types: {known}") from None


def parse_typed_value(text: str) -> tuple[type[SignalType], str]:
    """`TYPE:VALUE` (as in `pdq:f8f8...`) into the signal type and the normalised value."""
    name, sep, value = text.partition(":")
    if not sep:
        raise InvalidHash(f"expected SIGNAL_TYPE:VALUE, got {text.strip()!r}")
    kind = get_signal_type(name)
    return kind, kind.parse(value)


def all_signal_types() -> list[type[SignalType]]:
    _load_plugins()
    return list(_REGISTRY.values())


for _builtin in (PDQ, MD5, SHA1, SHA256):
    register(_builtin)
