"""``tumorseg grade --export {canvas,moodle,csv} FILE --roster ROSTER [--points ...]``: the
grades of a grading folder in the layouts Canvas and Moodle import, matched through a roster;
no kernel runs (``grade_submission`` is the stand-in of conftest's ``fake_grading``: a
submission's text is how many exercises pass)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tumorseg.course.exercises import REGISTRY
from tumorseg.course.grading import cli, lms

#: Canvas's gradebook import (Instructor Guide, "How do I import grades in the Gradebook?"):
#: these four columns, then one column per assignment; its export adds a "Points Possible" row
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "Section"]


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture
def graded(tmp_path, fake_grading) -> Path:
    """A grading folder of ann (6 of 6), ben (2) and zed (4, not on the roster)."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, points in (("ann", 6), ("ben", 2), ("zed", 4)):
        (subs / f"{name}.ipynb").write_text(str(points))
    out = tmp_path / "grades"
    assert cli.grade_main([str(subs), "--out", str(out), "--no-sandbox", "--quiet"]) == 0
    return out


@pytest.fixture
def roster(tmp_path) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(
        "file,name,id,sis_id,section\n"
        "ann,Ann Lee,101,S-1,A\n"
        "ben.ipynb,Ben Kim,102,,B\n"  # .ipynb is allowed; no SIS id
        "cho,Cho Park,103,S-3,A\n"  # submitted nothing
    )
    return path


def test_canvas_file_has_the_gradebook_columns_and_one_row_per_graded_student(
    graded, roster, tmp_path, capsys
):
    target = tmp_path / "canvas.csv"
    argv = [str(graded.parent / "subs"), "--out", str(graded), "--no-sandbox", "--quiet"]
    code = cli.grade_main([*argv, "--export", "canvas", str(target), "--roster", str(roster)])
    assert code == 0
    rows = _rows(target)
    assert rows[0] == [*CANVAS_COLUMNS, lms.DEFAULT_ASSIGNMENT]
    assert rows[1] == ["Points Possible", "", "", "", "6"]
    assert rows[2:] == [["Ann Lee", "101", "S-1", "A", "6"], ["Ben Kim", "102", "", "B", "2"]]
    out = capsys.readouterr().out
    assert "canvas export: " in out and "(2 of 3 students graded)" in out
    assert "Submissions with no roster entry (1): zed.ipynb" in out
    assert "Roster entries with no graded submission (1): cho" in out
    summary = (graded / "summary.html").read_text()
    assert "zed.ipynb" in summary and "<li>cho</li>" in summary


def test_moodle_file_has_an_identifier_and_the_grade_item(graded, roster, tmp_path):
    text, export = lms.render(
        lms.Format.MOODLE, graded, lms.read_roster(roster), {}, assignment="Lab 3"
    )
    rows = list(csv.reader(text.splitlines()))
    assert rows == [
        ["ID number", "Full name", "Lab 3"],
        ["S-1", "Ann Lee", "6"],
        ["102", "Ben Kim", "2"],
    ]
    assert export.no_roster_entry == ["zed.ipynb"] and export.no_submission == ["cho"]


def test_points_come_from_the_registry_or_the_override(graded, roster):
    assert all(ex.points == 1 for ex in REGISTRY.values())
    override = lms.parse_points(["C1=2", "C6=0.5"])
    text, export = lms.render(lms.Format.CSV, graded, lms.read_roster(roster), override)
    rows = {r["file"]: r for r in csv.DictReader(text.splitlines())}
    assert export.maximum == 2 + 4 + 0.5
    # ben passed C1 and C2: 2 + 1; ann passed all six
    assert (rows["ben"]["C1"], rows["ben"]["C2"], rows["ben"]["C3"]) == ("2", "1", "0")
    assert rows["ben"]["total"] == "3" and rows["ann"]["total"] == "6.5"
    assert {f: r["status"] for f, r in rows.items()} == {
        "ann": "graded",
        "ben": "graded",
        "cho": "no submission",
        "zed": "not in roster",
    }
    assert rows["ann"]["max"] == "6.5" and rows["cho"]["total"] == ""
    for bad in (["C9=1"], ["C1=x"], ["C1=-1"], ["C1"]):
        with pytest.raises(lms.DataError, match="EXERCISE=POINTS"):
            lms.parse_points(bad)


def test_canvas_column_names_are_accepted_in_the_roster(graded, tmp_path):
    roster = tmp_path / "canvas-roster.csv"
    roster.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,file\n"
        "    Points Possible,,,,,\n"
        "Ann Lee,101,S-1,ann@x,A,ann\n"
    )
    students = lms.read_roster(roster)
    assert students == {"ann": lms.Student("ann", "Ann Lee", "101", "S-1", "A")}


def test_roster_problems_are_user_errors_before_grading(graded, tmp_path, capsys):
    no_file = tmp_path / "no-file.csv"
    no_file.write_text("name,id\nAnn,1\n")
    twice = tmp_path / "twice.csv"
    twice.write_text("file,name\nann,A\nann,B\n")
    argv = [str(graded.parent / "subs"), "--out", str(tmp_path / "o"), "--no-sandbox"]
    for extra, says in (
        (["--export", "canvas", "x.csv", "--roster", str(no_file)], "no 'file' column"),
        (["--export", "canvas", "x.csv", "--roster", str(twice)], "listed twice"),
        (["--export", "canvas", "x.csv"], "--export needs --roster"),
        (["--export", "blackboard", "x.csv", "--roster", str(twice)], "choose one of"),
        (["--roster", str(twice)], "go with --export"),
    ):
        with pytest.raises(SystemExit) as info:
            cli.grade_main([*argv, *extra])
        assert info.value.code == 2 and says in capsys.readouterr().err, extra
    assert not (tmp_path / "o").exists()  # nothing was graded
