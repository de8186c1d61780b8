"""The one exception type for mistakes a user can make (bad URDF, bad flag, unknown robot).

Scripts catch it at the top and print its message as a single line with exit status 2; anything else that
escapes is an internal bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input. The message names the input and says how to fix it."""


def notice(message: str) -> None:
    """Tell the user something during a run, on stderr, on a line of its own (also when a terminal's progress
    line, redrawn in place, is on the screen)."""
    import sys

    print(("\n" if sys.stdout.isatty() else "") + message, file=sys.stderr, flush=True)


class SettingError(UserError, ValueError):
    """A setting out of its range (`EnvConfig`'s, say): a `ValueError` for code that builds one, one line for a
    script's user."""
