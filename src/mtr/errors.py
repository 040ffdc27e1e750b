"""The errors a user reads in one line: bad input (exit 2) and a run that could not finish (exit 1)."""


class InputError(ValueError):
    """A table, column, config field or file that mtr cannot use as given."""


class RunError(RuntimeError):
    """A command that could not finish for a reason outside its arguments (a worker killed, trials that keep
    failing); the message says what happened and what the command kept."""
