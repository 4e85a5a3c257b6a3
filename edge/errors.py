"""The one exception type the command line turns into a one-line error and a non-zero exit."""


class ShelfWatchError(Exception):
    """Bad input or a failed precondition, explained in one line for the person at the terminal."""
