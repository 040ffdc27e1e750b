"""Errors raised for bad user input: each message names the table, column, field or file."""


class InputError(ValueError):
    """A table, column, config field or file that mtr cannot use as given."""
