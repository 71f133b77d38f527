"""The one error type a user can cause. ``ffpt`` prints its message (one line naming the file,
frame, atom or key at fault) and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: a file, config key, frame, atom or option. The message locates it."""


def short_reason(exc: BaseException, limit: int = 300) -> str:
    """A library exception's message on one line for a user error: at most ``limit`` characters, cut
    between words (`` ...`` marks the cut), never inside one; the exception's type if it says nothing."""
    import re
    import textwrap

    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())  # no terminal colour codes
    return textwrap.shorten(text, limit, placeholder=" ...") if text else type(exc).__name__
