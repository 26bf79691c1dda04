"""Optional dependencies: what needs which extra, said in one line when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """``module`` imported, or :class:`MissingExtraError`: "WHAT needs the EXTRA extra: pip install 'vqcodec[EXTRA]'"."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{what} needs {module}, part of the {extra!r} extra: pip install 'vqcodec[{extra}]'"
        ) from exc
