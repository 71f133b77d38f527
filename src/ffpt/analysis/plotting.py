"""Shared matplotlib plumbing: a headless pyplot and one way to finish and save a figure as PNG."""

from __future__ import annotations

import os
from pathlib import Path

from ffpt.fileio import atomic_path


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def wrap_title(title: str, width_inches: float, fontsize: float = 12.0) -> str:
    """``title`` broken into lines that fit ``width_inches`` at ``fontsize`` (pt; a character is taken
    as 0.6 of the font size wide, wider than most), so a long title is never cut off."""
    import textwrap

    return "\n".join(textwrap.wrap(title, max(20, int(width_inches * 72 / (0.6 * fontsize))),
                                    break_long_words=False))


def save_figure(fig, path: str | os.PathLike, title: str | None = None, dpi: int = 120) -> Path:
    """Add an optional figure title (wrapped to the figure's width), lay out, write PNG (creating
    folders) and close the figure."""
    if title:
        size = fig.get_size_inches()[0]
        fig.suptitle(wrap_title(title, size))
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:  # the temporary file's name ends in .tmp: say the format
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    pyplot().close(fig)
    return path
