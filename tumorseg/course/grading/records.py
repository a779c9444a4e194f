"""The records that flow through ``tumorseg grade``'s stages (:mod:`.grader` calls them in
order): :class:`Limits` and :class:`Setup` (what every run of a batch shares), :class:`Run` and
:class:`Item` (what one grading run left behind, stage 2 :mod:`.running`), the outcomes the
judge gives (:class:`Result`, :class:`Regrade`, :class:`RunBroken`) and its record
:class:`Judged` (stage 3 :mod:`.judging`), and :class:`Graded` (one submission's final results,
after stage 4 :mod:`.flagging`, written by stage 5 :mod:`.reports`).  It imports no stage.

They hold data only: a stage reads their fields and calls no code of this module, except
:class:`Graded`, which computes its scores once when it is made.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from tumorseg import resources

from . import isolation

INSTRUCTOR = resources.instructor_notebook()


class Status(str, enum.Enum):
    """The status of one graded exercise (the value is what reports show)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    MISSING = "missing"
    GRADER_ERROR = "grader-error"
    #: it passed, but its cell uses the package's own implementation (``--library-answers zero``)
    FLAGGED = "flagged"


STATUSES = tuple(s.value for s in Status)
#: what ``--library-answers`` may say: keep the score of a flagged exercise, or score it 0
LIBRARY_ANSWERS = ("keep", "zero")
#: outcomes of an item that did not (reliably) run
NOT_RUN = {"after-timeout", "kernel-dead", "skipped", "setup-error", None}
TRUSTED = {"prelude", "setup", "pre"}
MAX_RUNS = 8  # per submission; every run settles at least one exercise, so 7 suffice
NO_SANDBOX = "none (--no-sandbox)"


@dataclass
class Limits:
    """Time, memory and process limits of one grading run (seconds, MiB, processes)."""

    cell_timeout: float = 30.0
    setup_timeout: float = 240.0
    startup_timeout: float = 90.0
    total_timeout: float = 600.0
    memory_mb: int = 6144
    max_procs: int = isolation.DEFAULT_MAX_PROCS


@dataclass(frozen=True)
class Result:
    """The final grade of one exercise; ``flags`` lists where its cell uses the package's own
    implementation of the exercise (:class:`.integrity.Use`, as text)."""

    status: Status
    message: str
    flags: tuple[str, ...] = ()

    @property
    def score(self) -> int | None:
        """1 passed, 0 otherwise; None for a grader error (not a zero)."""
        return None if self.status is Status.GRADER_ERROR else int(self.status is Status.PASSED)


@dataclass(frozen=True)
class Regrade:
    """The exercise's result in this run may have been caused by earlier code: grade it again
    in a fresh kernel."""


@dataclass(frozen=True)
class RunBroken:
    """The run broke before any student code ran (kernel start or a setup cell failed)."""


Outcome = Result | Regrade | RunBroken


@dataclass
class Item:
    role: str
    exercise: str
    outcome: str | None
    ename: str = ""


@dataclass
class Run:
    """What one grading run left behind, read after all its processes were killed."""

    exercises: list[str]
    items: list[Item] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)
    junit_found: bool = False
    outer_timeout: bool = False
    progress: list[tuple[str, str]] = field(default_factory=list)  # (role, exercise) started
    status: int = 0
    seconds: float = 0.0
    log: str = ""


@dataclass
class Setup:
    """What every grading run of a batch shares.

    ``library`` is the filtered copy of the package mounted in the sandbox
    (:func:`isolation.prepare_library`), with the template home of :func:`isolation.seed_home`
    beside it; None grades without a sandbox (``--no-sandbox``)."""

    instructor: nbformat.NotebookNode
    limits: Limits = field(default_factory=Limits)
    library: Path | None = None
    keep: Path | None = None
    library_answers: str = "keep"
    #: the answer key of every exercise (``hidden.reference.answer_keys``), computed once per
    #: batch for the judge; None: the judge computes the one it needs
    keys: dict[str, Any] | None = None

    @property
    def sandboxed(self) -> bool:
        return self.library is not None


@dataclass
class Judged:
    """Stage 3's record (:func:`.judging.judge_run`), also what it is given: the results
    settled so far, the exercises still pending and the next ``batch`` stage 2 runs (empty when
    every exercise is settled), the runs so far, how many broke before student code
    (``failures``) and whether the last one did (``broken``)."""

    results: dict[str, Result]
    batch: list[str]
    pending: list[str]
    runs: int = 0
    failures: int = 0
    broken: bool = False


@dataclass
class Graded:
    """One submission's final results (after stage 4).  ``scores`` (per exercise), ``total``
    (None when a grader error left an exercise unscored), ``flags`` (how many graded cells use
    the package's own implementation of their exercise) and ``grader_error`` are computed once,
    when the record is made, so the stage that writes it reads plain values."""

    name: str
    results: dict[str, Result]
    seconds: float
    runs: int
    scores: dict[str, int | None] = field(init=False)
    total: int | None = field(init=False)
    flags: int = field(init=False)
    grader_error: bool = field(init=False)

    def __post_init__(self) -> None:
        self.scores = {ex: r.score for ex, r in self.results.items()}
        values = list(self.scores.values())
        self.total = None if None in values else sum(v for v in values if v is not None)
        self.flags = sum(bool(r.flags) for r in self.results.values())
        self.grader_error = any(r.status is Status.GRADER_ERROR for r in self.results.values())
