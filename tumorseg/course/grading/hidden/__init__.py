"""The grader's hidden half: reference implementations, expected results and the judgement.

The sandbox leaves this whole folder out of the package copy it mounts
(:data:`tumorseg.course.grading.isolation.HIDDEN`), so student code can neither read nor import
anything in it.  Only the grader process, outside the sandbox, imports it.
"""
