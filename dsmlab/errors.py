"""The error types a user sees: what is wrong and what to do, in one line.

`UsageError` is a mistake on the command line or in the call (an unknown name, a bad option,
a missing input file): the CLIs exit with status 2. `DSMLabError` is every other failure a
user can meet and fix (a corrupt checkpoint, an unreachable hub, a dataset without a transcript
column): status 1. `dsmlab.cli.run_cli` turns both into `error: ...` on stderr.
"""


class DSMLabError(Exception):
    """A user-facing error: the message says what is wrong and what to do about it."""


class UsageError(DSMLabError):
    """A mistake in how dsmlab was called: a CLI exits with status 2."""
