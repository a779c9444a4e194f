"""Errors and exit statuses shared by every layer: the ground floor, importing nothing of tumorseg.

- :class:`DataError`: bad input data.  Library code raises it; its message names the file, says
  what is wrong and how to fix it.
- :func:`fail`: how a command stops on a user error (a missing or bad input file, an impossible
  option): ``tumorseg <command>: error: <message>`` on stderr and exit status ``USER_ERROR``
  (2), the form argparse uses for a bad option.  ``tumorseg.cli`` reports a ``DataError`` that
  a command does not handle itself the same way.  Exit status 1 means the command ran but its
  result is negative (``release --check`` found a stale notebook, ``grade`` had grader errors,
  a download failed on the network).

Command modules (each stage's ``cli.py`` and scripts) import ``fail`` from here, so no library
module needs to import the dispatcher ``tumorseg.cli``.
"""

from __future__ import annotations

import sys
from typing import NoReturn

#: Exit status of a command stopped by a user error.
USER_ERROR = 2


class DataError(ValueError):
    """Bad input data: a missing, corrupt or malformed file, or an unknown dataset layout.

    The message names the file, says what is wrong with it, and how to fix it.
    """


def fail(prog: str, error: BaseException | str) -> NoReturn:
    """Stop a command on a user error: ``<prog>: error: <message>`` on stderr, exit status 2.

    prog: the command as typed, e.g. ``"tumorseg predict"``.
    error: the message, or an exception whose first argument is the message (a ``KeyError``'s
        text without the quotes ``str()`` would add).
    Raises SystemExit(2).
    """
    if isinstance(error, BaseException) and error.args and isinstance(error.args[0], str):
        error = error.args[0]
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(USER_ERROR)
