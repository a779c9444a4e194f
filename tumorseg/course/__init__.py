"""Course tooling: the public tests the notebook calls, the student release and the autograder.

- :mod:`tumorseg.course.public_tests` gives students immediate feedback on the six exercises;
- :mod:`tumorseg.course.release` turns the instructor notebook into the student notebook
  (``tumorseg release``);
- ``tumorseg.course.grader`` grades submitted notebooks with stricter, hidden cases.
"""
