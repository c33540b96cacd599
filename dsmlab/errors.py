"""One exception type for mistakes a user can fix; the CLIs print it as one line."""


class DSMLabError(Exception):
    """A user-facing error: the message says what is wrong and what to do about it."""
