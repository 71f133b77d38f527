"""The one error type a user can cause. ``ffpt`` prints its message (one line naming the file,
frame, atom or key at fault) and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: a file, config key, frame, atom or option. The message locates it."""
