"""What the course notebook imports as ``util``: the helpers of ``tumorseg.course.facade``.

See ``tumorseg/course/facade.py`` for the list of names and what each one does.
"""

from tumorseg.course.facade import *  # noqa: F403
from tumorseg.course.facade import __all__  # noqa: F401
