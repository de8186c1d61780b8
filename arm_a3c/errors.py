"""The one exception type for mistakes a user can make (bad URDF, bad flag, unknown robot).

Scripts catch it at the top and print its message as a single line with exit status 2; anything else that
escapes is an internal bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input. The message names the input and says how to fix it."""
