"""Stage 4 of ``tumorseg grade``: flag the exercises whose graded cell imports or calls the
package's own implementation of that exercise (:mod:`.integrity`).

:func:`flag_submission` takes every exercise's result (stages 1 and 3) and the graded cells'
sources, and returns the final results, in the registry's order."""

from __future__ import annotations

from tumorseg.course.exercises import REGISTRY

from . import integrity
from .records import Result, Status


def flag_library_answers(
    result: Result, exercise: str, source: str, policy: str = "keep"
) -> Result:
    """``result`` with the integrity flags of the exercise's cell ``source`` (:mod:`.integrity`):
    the uses go into the message and :attr:`Result.flags`; with ``policy`` ``"zero"`` a passed
    exercise becomes :attr:`Status.FLAGGED` (0 points).  Unflagged results come back as they are."""
    ex = REGISTRY[exercise]
    uses = integrity.library_uses(source, ex)
    if not uses:
        return result
    status, message = result.status, f"{result.message}\n{integrity.flag_message(ex, uses)}"
    if policy == "zero" and status is Status.PASSED:
        status = Status.FLAGGED
        message += " This course scores such answers 0 (--library-answers zero)."
    return Result(status, message, tuple(str(u) for u in uses))


def flag_submission(
    results: dict[str, Result], sources: dict[str, str], policy: str = "keep"
) -> dict[str, Result]:
    """Stage 4: every exercise of the registry, in its order, flagged by
    :func:`flag_library_answers` (an exercise without a source is checked on an empty cell)."""
    return {
        ex: flag_library_answers(results[ex], ex, sources.get(ex, ""), policy) for ex in REGISTRY
    }
