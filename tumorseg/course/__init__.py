"""Course tooling: the exercise records, the public tests the notebook calls, the student
release and the autograder.

- :mod:`tumorseg.course.exercises` holds one record per graded exercise (:data:`REGISTRY`);
  :mod:`tumorseg.course.cases` their hidden inputs and :mod:`tumorseg.course.feedback` the
  messages both the public tests and the grader give;
- :mod:`tumorseg.course.public_tests` gives students immediate feedback on the exercises;
- :mod:`tumorseg.course.release` turns the instructor notebook into the student notebook
  (``tumorseg release``);
- :mod:`tumorseg.course.grading` grades submitted notebooks with stricter, hidden cases
  (``tumorseg grade``); its ``hidden`` folder never enters the grading sandbox.
"""
