"""The node's version: the installed ``cstake`` package's, with the Python that runs it."""

from __future__ import annotations

import platform
from importlib import metadata


def get_package_version() -> str:
    """``X.Y.Z`` of the installed package (``unknown`` in a source tree never installed)."""
    try:
        return metadata.version("cstake")
    except metadata.PackageNotFoundError:
        return "unknown"


def get_version() -> str:
    """``cstake X.Y.Z (Python A.B.C)``."""
    return f"cstake {get_package_version()} (Python {platform.python_version()})"
