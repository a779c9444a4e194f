"""nbval settings for the instructor notebook.

Checked cells (``# NBVAL_CHECK_OUTPUT``) compare stdout and rich outputs only: TensorFlow and
Keras may write log lines or warnings to stderr on some machines, which says nothing about
whether the exercise output is right.  This is nbval's documented way to ignore a stream.
"""


def pytest_collectstart(collector):
    if str(getattr(collector, "path", "")).endswith(".ipynb"):
        collector.skip_compare = (*collector.skip_compare, "stderr")
