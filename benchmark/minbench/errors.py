"""The one exception type for a user's mistake.

The CLI turns a ``UserError`` into a one-line message and a nonzero exit, never a
traceback. Anything else that escapes is a bug in minbench and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: a file, row or argument, and what is wrong with it."""

    exit_code = 2
