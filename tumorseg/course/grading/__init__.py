"""The autograder: ``tumorseg grade`` (:mod:`.grader`) and its parts.

- :mod:`.cli` -- the command lines: ``tumorseg grade`` and the sandbox runner's.
- :mod:`.grader` -- the orchestrator: calls the stages in order for each submission (read
  with :mod:`.nbtools`, run with :mod:`.running`, judge with :mod:`.judging`, flag with
  :mod:`.flagging`, write with :mod:`.reports`); :mod:`.records` holds what flows between them.
- :mod:`.pages` -- the student's feedback page and the instructor's summary (HTML, CSV).
- :mod:`.lms` -- ``--export``: the grades in Canvas's, Moodle's or a plain CSV layout.
- :mod:`.merge` -- how the grade folders of shards merge (``tumorseg merge``).
- :mod:`.checks` -- the in-kernel half of every graded check: runs the student's function on
  the hidden cases of its exercise's record.  The grader copies it into each grading folder
  and the grading kernel imports that copy before any student code runs.
- :mod:`.hidden` -- the grader-side half, a folder the sandbox leaves out as a whole: the
  reference implementation of each exercise and its expected results (``hidden.reference``)
  and the comparison that decides a score (``hidden.judge``).  It never enters a grading
  folder or a kernel.
- :mod:`.integrity` -- flags graded cells that use the package's own implementation of their
  exercise (its library twins).
- :mod:`.isolation` -- the bubblewrap sandbox of a grading run: namespaces, what is mounted
  (read-only, without the hidden folder), the environment and the process limit.
- :mod:`.sandbox` -- the runner outside the sandbox: its own session, memory/CPU/file-size
  limits, the timeout, and every leftover process killed.
- :mod:`.results` -- the grades folder: results.csv merged by submission, never lost.
- :mod:`.nbtools` -- reading submissions and building the reduced grading notebook.
"""
