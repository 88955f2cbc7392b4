"""The base of every error that bad input causes (a config, a dataset, a file, a flag).

The library raises subclasses of :class:`UserError` where the input is at fault and its message
says what was wrong and how to fix it; the command-line wrapper (:mod:`reidbox.cli`) prints such
an error as one line and exits 2. Programming errors stay ordinary exceptions with tracebacks.
This module imports nothing of reidbox, so every layer may raise these.
"""


class UserError(Exception):
    """An input error: the message is one line that names the input and the fix."""


class UsageError(UserError, ValueError):
    """A command line that cannot work; the message says what to type instead."""


class StoppedWithRankZero(UserError):
    """Raised on every other rank of a torchrun job when rank 0 refused the run's input; rank 0
    prints the one line that says why, so the command-line wrapper prints nothing for this."""


__all__ = ["StoppedWithRankZero", "UsageError", "UserError"]
