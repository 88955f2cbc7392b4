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


class InputError(UserError, ValueError):
    """A value given to reidbox (an argument, a config value, a file's content) cannot work."""


class UnknownNameError(UserError, KeyError):
    """A name that is not registered or not known (a dataset, a model part, an option)."""

    def __str__(self) -> str:  # the message, not KeyError's quoted repr of it
        return str(self.args[0]) if self.args else ""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class InputTypeError(UserError, TypeError):
    """An argument of the wrong kind (e.g. an image that is neither a path nor an array)."""


class MissingDependencyError(UserError, ImportError):
    """An optional package a feature needs is not installed; the message says what to install."""


class NotReadyError(UserError, RuntimeError):
    """An object used before the step that prepares it (an index searched before ``add``)."""


class StoppedWithRankZero(UserError):
    """Raised on every other rank of a torchrun job when rank 0 refused the run's input; rank 0
    prints the one line that says why, so the command-line wrapper prints nothing for this."""


__all__ = [
    "InputError",
    "InputTypeError",
    "MissingDependencyError",
    "MissingInputError",
    "NotReadyError",
    "StoppedWithRankZero",
    "UnknownNameError",
    "UsageError",
    "UserError",
]
