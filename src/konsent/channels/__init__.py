"""Channel adapters, one module per provider; the registry maps a kind to its adapter."""

from __future__ import annotations

from konsent.channels.base import ChannelAdapter

_REGISTRY: dict[str, type[ChannelAdapter]] = {}


def register(cls: type[ChannelAdapter]) -> type[ChannelAdapter]:
    _REGISTRY[cls.kind] = cls
    return cls


def adapter_class(kind: str) -> type[ChannelAdapter]:
    _load_builtin()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown channel kind {kind!r}") from None


def kinds() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    """Import every adapter module in this package once; each registers itself."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("base",) and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
