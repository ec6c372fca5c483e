"""Writing the vector files and comparing them with freshly computed values, naming every difference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.vectors.build import all_vectors

DATA_DIR = Path(__file__).resolve().parent / "data"


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write_all(directory: Path = DATA_DIR) -> list[str]:
    """Write every vector file; their names."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, doc in all_vectors().items():
        (directory / name).write_text(render(doc))
        out.append(name)
    return out


def diff(path: str, stored: Any, fresh: Any, out: list[str], limit: int = 50) -> None:
    """Append ``path: stored -> fresh`` for every leaf that differs (at most ``limit``)."""
    if len(out) >= limit:
        return
    if isinstance(stored, dict) and isinstance(fresh, dict):
        for k in sorted(set(stored) | set(fresh)):
            if k not in stored or k not in fresh:
                out.append(f"{path}.{k}: {'missing from the file' if k not in stored else 'no longer computed'}")
            else:
                diff(f"{path}.{k}", stored[k], fresh[k], out, limit)
    elif isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            out.append(f"{path}: {len(stored)} items in the file, {len(fresh)} computed")
        for i, (a, b) in enumerate(zip(stored, fresh, strict=False)):
            diff(f"{path}[{i}]", a, b, out, limit)
    elif stored != fresh:
        out.append(f"{path}: file has {str(stored)[:80]}, computed {str(fresh)[:80]}")


def compare(directory: Path = DATA_DIR) -> list[str]:
    """Every difference between the files and the values computed now (empty: they match)."""
    out: list[str] = []
    for name, doc in all_vectors().items():
        path = directory / name
        if not path.exists():
            out.append(f"{name}: missing (python -m tests.vectors generate)")
            continue
        diff(name, json.loads(path.read_text()), json.loads(render(doc)), out)
    return out
