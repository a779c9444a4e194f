"""The autograder's internals (``tumorseg grade`` lives in :mod:`tumorseg.course.grader`).

- :mod:`.checks` -- the hidden cases and the in-kernel half of every graded check.  It needs only
  numpy and the standard library, because the grader copies it into each grading folder and
  the grading kernel imports that copy before any student code runs.
- :mod:`.reference` -- the grader-side half: reference implementations, expected results and
  the comparison that decides a score.  It never enters a grading folder or a kernel.
- :mod:`.isolation` -- the bubblewrap sandbox of a grading run: namespaces, what is mounted
  (read-only, without the reference solutions), the environment and the process limit.
- :mod:`.sandbox` -- the runner outside the sandbox: its own session, memory/CPU/file-size
  limits, the timeout, and every leftover process killed.
- :mod:`.results` -- the grades folder: results.csv merged by submission, never lost.
- :mod:`.nbtools` -- reading submissions and building the reduced grading notebook.
"""
