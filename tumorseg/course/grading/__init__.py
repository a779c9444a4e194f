"""The autograder's internals (``tumorseg grade`` lives in :mod:`tumorseg.course.grader`).

- :mod:`.checks` -- the hidden cases and the in-kernel half of every graded check.  It needs only
  numpy and the standard library, because the grader copies it into each grading folder and
  the grading kernel imports that copy before any student code runs.
- :mod:`.reference` -- the grader-side half: reference implementations, expected results and
  the comparison that decides a score.  It never enters a grading folder or a kernel.
- :mod:`.sandbox` -- runs nbval on one grading folder in its own session with resource limits
  and kills every process it left behind.
- :mod:`.nbtools` -- reading submissions and building the reduced grading notebook.
"""
