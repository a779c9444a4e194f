"""Stage 4 of ``tumorseg grade``: flag the exercises whose graded cell imports or calls the
package's own implementation of that exercise (:mod:`.integrity`).

:func:`flag_submission` takes every exercise's result (stages 1 and 3) and the graded cells'
sources, and returns the final results, in the registry's order."""

from __future__ import annotations

from tumorseg.course.exercises import REGISTRY

from . import integrity
from .records import Result, Status


def flag_submission(
    results: dict[str, Result],
    sources: dict[str, str],
    policy: str = "keep",
    exercises: list[str] | None = None,
) -> dict[str, Result]:
    """Stage 4: each exercise of ``exercises`` (default: the registry), in that order, with the
    integrity flags of its cell (:func:`.integrity.library_flags`; a missing cell has none): the
    uses go into the message and :attr:`Result.flags`; with ``policy`` ``"zero"`` a passed
    exercise becomes :attr:`Status.FLAGGED` (0 points).  Unflagged results come back as they are."""
    order = list(REGISTRY) if exercises is None else exercises
    flags = integrity.library_flags(sources, order)
    final: dict[str, Result] = {}
    for ex in order:
        result, (uses, line) = results[ex], flags[ex]
        if uses:
            status, message = result.status, f"{result.message}\n{line}"
            if policy == "zero" and status is Status.PASSED:
                status = Status.FLAGGED
                message += " This course scores such answers 0 (--library-answers zero)."
            result = Result(status, message, uses)
        final[ex] = result
    return final


def flag_library_answers(
    result: Result, exercise: str, source: str, policy: str = "keep"
) -> Result:
    """One exercise's ``result`` flagged as :func:`flag_submission` does."""
    return flag_submission({exercise: result}, {exercise: source}, policy, [exercise])[exercise]
