"""The grader's hidden half: the references and their results (:mod:`.reference`), the judge
(:mod:`.judge`).

The sandbox leaves this whole folder out of the package copy it mounts
(:data:`tumorseg.course.grading.isolation.HIDDEN`), so student code can neither read nor import
anything in it.  Only the grader process, outside the sandbox, imports it.
"""
