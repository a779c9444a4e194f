"""What the grader writes for people: one feedback page per submission, and the instructor's
summary of a whole grading folder.

- :func:`feedback_page`: ``<name>.html`` next to ``<name>.json``, for the student.  It opens
  offline (one file, inline style, no script, nothing fetched) and shows the total, each
  exercise with its status in words, its points and the message that says what to fix, and the
  integrity flags in words.  Numbers a message gives as a hidden check's expected value
  ("expected 0.400000, got 0.500000") are replaced by words: the page tells what came back and
  how to fix it, never a hidden expected value (the JSON report keeps the instructor's view).
- :func:`write_summary`: ``summary.csv`` and ``summary.html`` of every report in a grading
  folder: per exercise how many submissions passed, failed, errored, timed out, ...; its most
  common messages; a histogram of totals; and, after an LMS export, the submissions and roster
  entries that were not matched (:mod:`.lms`).

Both read the JSON reports (a dict per submission: ``submission``, ``total``, ``max``,
``flags``, ``sandbox``, ``exercises`` {id: {score, status, message, flags}}) as the grader
writes them, so a merged folder (``tumorseg merge``) is summarised the same way.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tumorseg.atomic import write_text
from tumorseg.course.exercises import REGISTRY

from .records import Status

SUMMARY_CSV = "summary.csv"
SUMMARY_HTML = "summary.html"
#: how many of an exercise's most common messages the summary lists
TOP_MESSAGES = 3
#: each status in words, for the student
STATUS_WORDS = {
    Status.PASSED: "Passed",
    Status.FAILED: "Failed: a hidden check got a wrong result",
    Status.ERROR: "Error: your code raised an exception or crashed",
    Status.TIMEOUT: "Timed out: your code did not finish in time",
    Status.MISSING: "Missing: the graded cell was not found",
    Status.GRADER_ERROR: "Not graded: the grader failed (this is not a zero)",
    Status.FLAGGED: "Flagged: it uses the package's own implementation, scored 0",
}
#: a number that a message gives as an expected value ("expected 0.400000", "expected -inf")
_EXPECTED_NUMBER = re.compile(
    r"\bexpected (?:[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|\.\d+|inf|nan))(?![\w(])", re.IGNORECASE
)
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #ccc;
padding: .4em .6em; vertical-align: top; text-align: left; } pre { white-space: pre-wrap;
margin: 0; font: 13px/1.4 ui-monospace, monospace; } .passed { background: #e6f4e6; }
.failed, .error, .timeout, .missing, .flagged { background: #fbeaea; }
.grader-error { background: #fff6d6; } .total { font-size: 1.4em; } .bar { background: #4a7ab5;
height: 1em; display: inline-block; vertical-align: middle; }
"""


def points(exercise: str, override: Mapping[str, float] | None = None) -> float:
    """What ``exercise`` is worth: ``override`` (``--points``), else the registry's points."""
    if override and exercise in override:
        return override[exercise]
    return REGISTRY[exercise].points


def _number(value: float) -> str:
    return f"{value:g}"


def hide_expected_values(message: str) -> str:
    """``message`` with every number given as an expected value replaced by words."""
    return _EXPECTED_NUMBER.sub("expected another value", message)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _flag_words(exercise: str, uses: list[str]) -> str:
    ex = REGISTRY.get(exercise)
    function = ex.function if ex else exercise
    listed = ", ".join(f"<code>{html.escape(u)}</code>" for u in uses)
    return (
        f"<li>UNQ_{html.escape(exercise)}: your cell uses the package's own implementation of "
        f"<code>{html.escape(function)}</code> ({listed}) instead of your own code. "
        "Your instructor decides whether such an answer counts.</li>"
    )


def feedback_page(report: Mapping[str, Any], override: Mapping[str, float] | None = None) -> str:
    """The HTML feedback page of one JSON report (see the module docstring)."""
    rows, flags, earned, possible = [], [], 0.0, 0.0
    for ex, entry in report["exercises"].items():
        worth = points(ex, override) if ex in REGISTRY else 1.0
        score = entry.get("score")
        possible += worth
        earned += worth * (score or 0)
        got = "–" if score is None else _number(worth * score)
        status = Status(entry["status"])
        function = REGISTRY[ex].function if ex in REGISTRY else ""
        rows.append(
            f'<tr class="exercise {status.value}" data-exercise="{html.escape(ex)}">'
            f"<td>UNQ_{html.escape(ex)}<br><code>{html.escape(function)}</code></td>"
            f"<td>{html.escape(STATUS_WORDS[status])}</td>"
            f"<td>{got} / {_number(worth)}</td>"
            f"<td><pre>{html.escape(hide_expected_values(entry['message']))}</pre></td></tr>"
        )
        if entry.get("flags"):
            flags.append(_flag_words(ex, list(entry["flags"])))
    ungraded = report.get("total") is None
    total = "not complete (a grader error: see below)" if ungraded else _number(earned)
    name = str(report["submission"])
    body = [
        f"<h1>Feedback on {html.escape(name)}</h1>",
        f'<p class="total">Total: <strong>{html.escape(total)}</strong> of '
        f"{_number(possible)} points</p>",
        "<table><thead><tr><th>Exercise</th><th>Status</th><th>Points</th>"
        "<th>What to fix</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
        "<h2>Flags</h2>",
        f"<ul>{''.join(flags)}</ul>" if flags else "<p>None: every graded cell is your own.</p>",
    ]
    if report.get("sandbox") and report["sandbox"] != "bubblewrap":
        body.append(f"<p>Graded without the sandbox ({html.escape(str(report['sandbox']))}).</p>")
    return _page(f"Feedback: {name}", "\n".join(body))


# --------------------------------------------------------------------------- the summary
def read_reports(folder: Path) -> list[dict[str, Any]]:
    """The grader's JSON reports in ``folder`` (files of another kind are left out)."""
    reports = []
    for path in sorted(folder.glob("*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and isinstance(report.get("exercises"), dict):
            reports.append(report)
    return reports


def summarise(reports: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of the reports: ``statuses`` {exercise: Counter of status values},
    ``messages`` {exercise: Counter of the messages of exercises that did not pass},
    ``totals`` Counter of totals (None: not complete), ``max`` the largest maximum."""
    statuses: dict[str, Counter] = {ex: Counter() for ex in REGISTRY}
    messages: dict[str, Counter] = {ex: Counter() for ex in REGISTRY}
    totals: Counter = Counter()
    top = len(REGISTRY)
    for report in reports:
        totals[report.get("total")] += 1
        top = max(top, int(report.get("max") or 0))
        for ex, entry in report["exercises"].items():
            statuses.setdefault(ex, Counter())[entry["status"]] += 1
            if entry["status"] != Status.PASSED.value:
                messages.setdefault(ex, Counter())[entry["message"]] += 1
    return {"statuses": statuses, "messages": messages, "totals": totals, "max": top}


def summary_csv(summary: Mapping[str, Any]) -> str:
    """One row per exercise (counts per status, the most common message and its count), then
    one row per total (``total=N``: how many submissions scored N; ``total=none``: not
    complete)."""
    buf = io.StringIO()
    statuses = [s.value for s in Status]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["item", *statuses, "submissions", "most_common_message", "message_count"])
    for ex, counts in summary["statuses"].items():
        [(message, count)] = summary["messages"][ex].most_common(1) or [("", 0)]
        row = [counts.get(s, 0) for s in statuses]
        writer.writerow([ex, *row, sum(counts.values()), message, count])
    for total in [*range(summary["max"] + 1), None]:
        n = summary["totals"].get(total, 0)
        if total is not None or n:
            writer.writerow(
                [f"total={'none' if total is None else total}", *[""] * len(statuses), n, "", ""]
            )
    return buf.getvalue()


def summary_html(summary: Mapping[str, Any], unmatched: Mapping[str, list[str]] | None) -> str:
    """The instructor's page: the table of statuses, the common messages, the histogram of
    totals and the unmatched names of an LMS export."""
    statuses = [s.value for s in Status]
    head = "".join(f"<th>{s}</th>" for s in statuses)
    rows = []
    for ex, counts in summary["statuses"].items():
        cells = "".join(f"<td>{counts.get(s, 0)}</td>" for s in statuses)
        common = "".join(
            f"<li>{n} ×<pre>{html.escape(m)}</pre></li>"
            for m, n in summary["messages"][ex].most_common(TOP_MESSAGES)
        )
        rows.append(
            f'<tr data-exercise="{html.escape(ex)}"><td>UNQ_{html.escape(ex)}</td>{cells}'
            f"<td><ul>{common}</ul></td></tr>"
        )
    totals, n_max = summary["totals"], summary["max"]
    biggest = max(totals.values(), default=1)
    bars = []
    for total in [*range(n_max + 1), None]:
        n = totals.get(total, 0)
        if total is None and not n:
            continue
        width = 20 * n / biggest
        label = "not complete" if total is None else str(total)
        bars.append(
            f'<tr class="histogram" data-total="{label}"><td>{label}</td><td>{n}</td>'
            f'<td><span class="bar" style="width:{width:.1f}em"></span></td></tr>'
        )
    body = [
        f"<h1>Grading summary: {sum(totals.values())} submissions</h1>",
        f"<table><thead><tr><th>Exercise</th>{head}<th>Most common messages</th></tr></thead>",
        f"<tbody>{''.join(rows)}</tbody></table>",
        "<h2>Totals</h2><table><thead><tr><th>Total</th><th>Submissions</th><th></th></tr>"
        f"</thead><tbody>{''.join(bars)}</tbody></table>",
    ]
    for what, names in (unmatched or {}).items():
        items = "".join(f"<li>{html.escape(n)}</li>" for n in names) or "<li>none</li>"
        body.append(f'<h2>{html.escape(what)}</h2><ul class="unmatched">{items}</ul>')
    return _page("Grading summary", "\n".join(body))


def write_summary(folder: Path, unmatched: Mapping[str, list[str]] | None = None) -> None:
    """Write ``summary.csv`` and ``summary.html`` of every report in ``folder``."""
    summary = summarise(read_reports(folder))
    write_text(folder / SUMMARY_CSV, summary_csv(summary))
    write_text(folder / SUMMARY_HTML, summary_html(summary, unmatched))
