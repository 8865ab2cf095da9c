"""The one exception type for a user's mistake: the CLI prints it as one line."""


class FinevlError(Exception):
    """Bad input or a bad request: the message says what is wrong and where."""
