"""What ``tumorseg grade`` writes for people: the student's feedback page (``<name>.html``)
and the instructor's summary (``summary.csv``, ``summary.html``).  No kernel runs here: the
pages are built from reports, and the batch of known outcomes uses a stand-in
``grade_submission`` (the hostile corpus's pages are checked in tests/test_grader.py, on its
one real batch)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_browser import chromium, offline_page  # noqa: F401  (the browser fixture)

from tumorseg.cli import main
from tumorseg.course.exercises import REGISTRY
from tumorseg.course.grading import cli, grader, pages

EXERCISES = tuple(REGISTRY)


def _report(**changes: dict) -> dict:
    exercises = {
        ex: {"score": 1, "status": "passed", "message": f"ok {ex}", "flags": []} for ex in EXERCISES
    }
    for ex, entry in changes.items():
        exercises[ex] = {**exercises[ex], **entry}
    total = sum(e["score"] or 0 for e in exercises.values())
    return {"submission": "ann.ipynb", "total": total, "max": 6, "flags": 0,
            "sandbox": "bubblewrap", "exercises": exercises, "seconds": 1.0}  # fmt: skip


def test_feedback_page_shows_total_status_points_message_and_flags():
    report = _report(
        C3={"score": 0, "status": "failed", "message": "expected 0.123457, got 0.5. Use tp."},
        C5={
            "score": 1,
            "status": "passed",
            "message": "ok\nIntegrity flag: ...",
            "flags": ["tumorseg.metrics.soft_dice_loss (line 3)"],
        },
        C6={"score": 0, "status": "timeout", "message": "<script>alert(1)</script> & more"},
    )
    page = pages.feedback_page(report)
    assert "Total: <strong>4</strong> of 6 points" in page
    assert 'class="exercise failed" data-exercise="C3"' in page
    assert "Failed: a hidden check got a wrong result" in page
    assert "Timed out: your code did not finish in time" in page
    assert page.count("<td>1 / 1</td>") == 4 and page.count("<td>0 / 1</td>") == 2
    # the message, but never a hidden expected value
    assert "expected another value, got 0.5. Use tp." in page and "0.123457" not in page
    # a student's text is shown as text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    # the flag, in words
    assert "UNQ_C5: your cell uses the package's own implementation of" in page
    assert "<code>tumorseg.metrics.soft_dice_loss (line 3)</code>" in page
    # offline: nothing to fetch, no script
    assert not any(s in page for s in ("http:", "https:", "src=", "<link", "<script", "@import"))


def test_a_grader_error_page_says_the_total_is_not_complete():
    page = pages.feedback_page(
        _report(C2={"score": None, "status": "grader-error", "message": "not a zero"})
        | {"total": None}
    )
    assert "not complete" in page and "Not graded: the grader failed (this is not a zero)" in page
    assert "<td>– / 1</td>" in page


@pytest.mark.parametrize(
    "message, shown",
    [
        (
            "C6 sensitivity: expected 0.400000, got 0.500000. hint",
            "expected another value, got 0.500000",
        ),
        ("expected -1.5e-07, got nan", "expected another value, got nan"),
        ("expected inf", "expected another value"),
        ("y has shape (2, 3); expected (3, 4, 4): one-hot", "expected (3, 4, 4)"),
        ("expected mean 0 and std 1", "expected mean 0 and std 1"),
        ("expected a tensor", "expected a tensor"),
    ],
)
def test_hidden_expected_numbers_are_replaced_by_words(message, shown):
    assert shown in pages.hide_expected_values(message)


# --------------------------------------------------------------------------- the summary
#: the batch of known outcomes: per submission, (status, message) of C1..C6
OUTCOMES = {
    "ann": ["passed"] * 6,
    "ben": ["passed", "failed", "failed", "passed", "error", "timeout"],
    "cho": ["passed", "failed", "missing", "passed", "passed", "passed"],
    "dev": ["failed", "failed", "error", "grader-error", "passed", "passed"],
}


@pytest.fixture
def known_batch(tmp_path, monkeypatch) -> Path:
    if not grader.INSTRUCTOR.is_file():
        pytest.skip("instructor notebook missing")

    def fake(path: Path, setup: object, max_bytes: int = 0, log: object = None) -> grader.Graded:
        results = {
            ex: grader.Result(grader.Status(status), f"{status} message of {ex}")
            for ex, status in zip(EXERCISES, json.loads(path.read_text()))
        }
        if path.stem == "ben":  # two submissions fail C2 with one message, one with another
            results["C2"] = grader.Result(grader.Status.FAILED, "C2 off by one")
        return grader.Graded(path.name, results, 0.1, 1)

    monkeypatch.setattr(grader, "grade_submission", fake)
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, statuses in OUTCOMES.items():
        (subs / f"{name}.ipynb").write_text(json.dumps(statuses))
    out = tmp_path / "out"
    assert cli.grade_main([str(subs), "--out", str(out), "--no-sandbox", "--quiet"]) == 1
    return out


def test_summary_counts_statuses_messages_and_totals(known_batch):
    with open(known_batch / pages.SUMMARY_CSV, newline="") as fh:
        rows = {r["item"]: r for r in csv.DictReader(fh)}
    counts = {
        ex: {s: int(rows[ex][s]) for s in ("passed", "failed", "error", "timeout", "missing")}
        for ex in EXERCISES
    }
    assert counts["C1"] == {"passed": 3, "failed": 1, "error": 0, "timeout": 0, "missing": 0}
    assert counts["C2"] == {"passed": 1, "failed": 3, "error": 0, "timeout": 0, "missing": 0}
    assert counts["C3"] == {"passed": 1, "failed": 1, "error": 1, "timeout": 0, "missing": 1}
    assert counts["C6"] == {"passed": 3, "failed": 0, "error": 0, "timeout": 1, "missing": 0}
    assert rows["C4"]["grader-error"] == "1" and all(
        rows[ex]["submissions"] == "4" for ex in EXERCISES
    )
    assert (rows["C2"]["most_common_message"], rows["C2"]["message_count"]) == (
        "failed message of C2",
        "2",
    )
    assert rows["C1"]["most_common_message"] == "failed message of C1"
    # totals: ann 6, ben 2, cho 4, dev not complete (a grader error)
    histogram = {k: int(r["submissions"]) for k, r in rows.items() if k.startswith("total=")}
    assert histogram == {"total=0": 0, "total=1": 0, "total=2": 1, "total=3": 0,
                         "total=4": 1, "total=5": 0, "total=6": 1, "total=none": 1}  # fmt: skip
    page = (known_batch / pages.SUMMARY_HTML).read_text()
    assert "Grading summary: 4 submissions" in page
    assert "<li>2 ×<pre>failed message of C2</pre></li><li>1 ×<pre>C2 off by one</pre>" in page
    assert page.count('class="histogram"') == 8


def test_every_submission_gets_a_page_and_the_merge_keeps_them(known_batch, tmp_path):
    for name in OUTCOMES:
        page = (known_batch / f"{name}.html").read_text()
        assert f"Feedback on {name}.ipynb" in page
    assert "Total: <strong>2</strong> of 6 points" in (known_batch / "ben.html").read_text()
    # two shards merged: the pages come along and the summary is that of the whole batch
    subs = known_batch.parent / "subs"
    argv = [str(subs), "--no-sandbox", "--quiet"]
    for i in (0, 1):
        cli.grade_main([*argv, "--out", str(tmp_path / f"shard-{i}"), "--shard", f"{i}/2"])
    merged = tmp_path / "merged"
    assert (
        main(["merge", "--out", str(merged), *(str(tmp_path / f"shard-{i}") for i in (0, 1))]) == 0
    )
    for name in OUTCOMES:
        assert (merged / f"{name}.html").read_text() == (known_batch / f"{name}.html").read_text()
    for summary in (pages.SUMMARY_CSV, pages.SUMMARY_HTML):
        assert (merged / summary).read_text() == (known_batch / summary).read_text()


@pytest.mark.slow
def test_feedback_and_summary_pages_in_chromium(chromium, known_batch):  # noqa: F811
    with offline_page(chromium) as (page, problems):
        page.goto((known_batch / "ben.html").as_uri(), wait_until="load")
        rows = page.locator("tr.exercise").all_inner_texts()
        total = page.locator(".total").inner_text()
        page.goto((known_batch / pages.SUMMARY_HTML).as_uri(), wait_until="load")
        bars = page.locator("tr.histogram .bar").count()
    assert problems == []
    assert total == "Total: 2 of 6 points" and len(rows) == 6
    assert rows[5].startswith("UNQ_C6") and "Timed out" in rows[5]
    assert bars == 8
