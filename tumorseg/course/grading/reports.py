"""Stage 5 of ``tumorseg grade``: write what a graded submission gave: its JSON report
(``<name>.json``), its feedback page (``<name>.html``, :mod:`.pages`) and its row of
``results.csv`` (merged by submission, :mod:`.results`).  It reads the plain values of the
:class:`.records.Graded` it is given and calls :mod:`.pages`, then :mod:`.results`, once each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tumorseg.atomic import write_text
from tumorseg.course.exercises import REGISTRY

from . import pages, results
from .records import Graded


def report_names(paths: list[Path]) -> list[str]:
    names, seen = [], {}
    for p in paths:
        stem = p.stem or "submission"
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(stem if count == 0 else f"{stem}-{count + 1}")
    return names


def report(g: Graded, path: Path, sandbox: str) -> dict[str, Any]:
    return {
        "submission": path.name,
        "total": g.total,
        "max": len(REGISTRY),
        "flags": g.flags,
        "sandbox": sandbox,
        "exercises": {
            ex: {
                "score": g.scores[ex],
                "status": r.status.value,
                "message": r.message,
                "flags": list(r.flags),
            }
            for ex, r in g.results.items()
        },
        "seconds": round(g.seconds, 1),
    }


def row(g: Graded, sandbox: str) -> dict[str, str]:
    def cell(value: int | None) -> str:
        return "" if value is None else str(value)

    return {
        **{ex: cell(g.scores[ex]) for ex in REGISTRY},
        "total": cell(g.total),
        "flags": str(g.flags),
        "sandbox": sandbox,
    }


def write(out: Path, name: str, key: str, g: Graded, path: Path, sandbox: str) -> None:
    """Write ``g``'s report ``out/name.json``, its feedback page ``out/name.html`` and its row
    ``key`` of ``out/results.csv``."""
    data, line = report(g, path, sandbox), row(g, sandbox)
    write_text(out / f"{name}.json", json.dumps(data, indent=2) + "\n")
    write_text(out / f"{name}.html", pages.feedback_page(data))
    results.merge(out, {key: line})
