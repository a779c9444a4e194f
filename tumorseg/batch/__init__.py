"""Batch work split over machines: the shard rule, the failures list and the run record.

Every batch command (``tumorseg predict`` on a folder, ``evaluate``, ``score``, ``grade``) takes
``--shard I/N`` and then does only its share of the items (cases, or submissions):

**The shard rule.**  Sort the item keys (case ids; for ``grade``, the submission names as
``results.csv`` lists them) as Python sorts strings: by Unicode code point, the same on every
machine, locale and Python version.  The item at position ``i`` (from 0) of that list belongs
to shard ``i mod N``.  So every item belongs to exactly one shard, the shards differ in size by
at most one item, and the N shards together do exactly the work of one unsharded run
(``--shard 0/1``).  The shards must be given the same items (the same dataset and options):
the position of an item depends on the others.

Outputs of a batch folder (``tumorseg predict DATA --out DIR``, ``evaluate --save DIR``):

- ``FAILURES_CSV`` (``failures.csv``): ``case,error``, one row per case whose input is broken,
  merged by case under a lock, so shards writing into one folder share it; a case that later
  succeeds leaves it, and the file is removed when no row is left;
- the run record ``run.json`` (``run-shard-I-of-N.json`` for a shard, ``run_record_name``):
  the command, its arguments, the model (``tumorseg.model.pretrained.model_record``), the
  package version, the shard and rule, the host, start and end times and the outcome counts,
  as nnU-Net writes ``predict_from_raw_data_args.json``.

The merge of sharded outputs (``tumorseg merge``, :func:`tumorseg.cli.merge_main`) belongs to each
command: :mod:`tumorseg.inference.merge` for case tables, :mod:`tumorseg.course.grading.merge`
for grade folders.  This package imports nothing of the package above it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import enum
import io
import json
import platform
import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorseg.atomic import folder_lock, write_text

#: Name of the failures list in a batch output folder.
FAILURES_CSV = "failures.csv"
#: Lock file taken around every change of ``FAILURES_CSV``.
_FAILURES_LOCK = ".failures.lock"
#: One line for records and help texts.
SHARD_RULE = "sort the item keys by code point; the item at position i belongs to shard i mod N"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count); ``Shard()`` is the whole batch."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.index, int) and isinstance(self.count, int)):
            raise ValueError(f"shard index and count must be integers, got {self!r}")
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                f"shard {self.index}/{self.count} does not exist: pass I/N with N >= 1 and "
                f"0 <= I < N, e.g. 0/{max(self.count, 1)} for the first of {max(self.count, 1)}"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` -> ``Shard(I, N)``; raises ValueError with the expected form."""
        index, sep, count = text.strip().partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(index), int(count))
        except ValueError as exc:
            if str(exc).startswith("shard "):
                raise
            raise ValueError(
                f"shard {text!r} is not of the form I/N (e.g. 0/4: the first of 4 shards)"
            ) from None

    @property
    def whole(self) -> bool:
        """True for the unsharded batch (``0/1``)."""
        return self.count == 1

    def positions(self, keys: Sequence[str]) -> list[int]:
        """Positions in ``keys`` of this shard's items, in shard-rule order (sorted by key;
        equal keys keep their order in ``keys``)."""
        order = sorted(range(len(keys)), key=lambda i: keys[i])
        return order[self.index :: self.count]

    def select(self, keys: Iterable[str]) -> list[str]:
        """This shard's keys, sorted (the shard rule, see the module docstring)."""
        keys = list(keys)
        return [keys[i] for i in self.positions(keys)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class Outcome(enum.Enum):
    """What a batch did with one item; the value is how the summary line names it."""

    WRITTEN = "written"
    EXISTING = "already there"
    FAILED = "failed"


@dataclass
class Tally:
    """Counts of ``Outcome`` over a batch, and the failures ``{item: reason}``."""

    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    failures: dict[str, str] = field(default_factory=dict)

    def add(self, outcome: Outcome, item: str = "", reason: str = "") -> None:
        self.counts[outcome] += 1
        if outcome is Outcome.FAILED:
            self.failures[item] = reason

    def line(self) -> str:
        """The run's last line, e.g. ``"12 written, 3 already there, 1 failed"``."""
        return ", ".join(f"{self.counts[o]} {o.value}" for o in Outcome)

    def as_dict(self) -> dict[str, int]:
        return {o.name.lower(): n for o, n in self.counts.items()}


def one_line(text: object) -> str:
    """``text`` as one line: newlines and runs of blanks become single spaces."""
    return " ".join(str(text).split())


def report_failure(prog: str, item: str, reason: object) -> None:
    """Print ``<prog>: <item> failed: <reason>`` as one line on stderr, above any progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(f"{prog}: {item} failed: {one_line(reason)}", file=sys.stderr)


# ----------------------------------------------------------------------------- failures.csv
def read_failures(folder: str | Path) -> dict[str, str]:
    """``{case: error}`` of ``folder/failures.csv``; empty when there is none."""
    path = Path(folder) / FAILURES_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {row["case"]: row["error"] for row in csv.DictReader(io.StringIO(text))}


def update_failures(
    folder: str | Path, failed: dict[str, str], cleared: Iterable[str] = ()
) -> Path | None:
    """Merge into ``folder/failures.csv``, under a lock: add or replace the rows of ``failed``
    (``{case: reason}``), drop the rows of ``cleared`` (cases now done), keep the others.

    Rows are sorted by case.  The file is removed when no row is left.  Returns its path, or
    None when it no longer exists.
    """
    folder = Path(folder)
    path = folder / FAILURES_CSV
    with folder_lock(folder, _FAILURES_LOCK):
        rows = read_failures(folder)
        for case in cleared:
            rows.pop(case, None)
        rows.update({case: one_line(reason) for case, reason in failed.items()})
        if not rows:
            path.unlink(missing_ok=True)
            return None
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["case", "error"])
        writer.writerows(sorted(rows.items()))
        return write_text(path, buffer.getvalue())


# ----------------------------------------------------------------------------- run record
def run_record_name(shard: Shard) -> str:
    """``run.json`` for an unsharded run, ``run-shard-I-of-N.json`` for shard I/N (shards that
    share one output folder each keep their own record)."""
    return "run.json" if shard.whole else f"run-shard-{shard.index}-of-{shard.count}.json"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # Path, Shard, Enum ...


def run_record(
    command: str, arguments: dict[str, Any], shard: Shard, model: dict[str, Any] | None = None
) -> dict[str, Any]:
    """How a batch output was made: ``{"command", "arguments", "model", "tumorseg", "shard",
    "shard_rule", "host", "python", "started"}`` (``finish_record`` adds the end)."""
    from tumorseg import __version__

    return {
        "command": command,
        "arguments": _json_safe(arguments),
        "model": _json_safe(model),
        "tumorseg": __version__,
        "shard": str(shard),
        "shard_rule": SHARD_RULE,
        "host": platform.node(),
        "python": platform.python_version(),
        "started": _now(),
    }


def write_run_record(folder: str | Path, record: dict[str, Any], shard: Shard) -> Path:
    """Write ``record`` atomically as ``folder/run_record_name(shard)``; returns the path."""
    path = Path(folder) / run_record_name(shard)
    return write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")


def finish_record(record: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """``record`` with ``"finished"`` (the time now) and ``"outcome"`` (e.g. the counts)."""
    return {**record, "finished": _now(), "outcome": _json_safe(outcome)}


# ----------------------------------------------------------------------------- signals
@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM (what Slurm and Kubernetes send on a time limit, a cancel or a node drain)
    into ``SystemExit(143)`` for the block, so ``finally`` clauses run: an atomic write under
    way removes its temporary file.  A no-op outside the main thread."""
    try:
        previous = signal.signal(signal.SIGTERM, _exit_on_term)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
