"""Class names that plots can draw: an installed font with their characters
(matplotlib's DejaVu Sans has no CJK glyphs), else ``#<index>`` labels (the
CSV beside the plot keeps the names).
"""
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

from rock_plugin.utils.text import printable


@lru_cache(maxsize=None)
def _fonts() -> Tuple[Tuple[str, str], ...]:
    from matplotlib import font_manager
    return tuple((f.name, f.fname) for f in font_manager.fontManager.ttflist)


def _covers(path: str, text: str) -> bool:
    from matplotlib.ft2font import FT2Font
    try:
        font = FT2Font(path)
    except (OSError, RuntimeError):
        return False
    return all(font.get_char_index(ord(c)) for c in text if not c.isspace())


def font_for(names: Sequence[str]) -> Optional[str]:
    """The family of an installed font that has every character of
    ``names`` (DejaVu Sans first), or None."""
    text = ''.join(set(''.join(names)))
    ordered = sorted(_fonts(), key=lambda f: f[0] != 'DejaVu Sans')
    return next((name for name, path in ordered if _covers(path, text)), None)


def plot_text(text: str) -> str:
    r"""``text`` (a class, file or run name) as matplotlib draws it
    literally: control characters escaped (:func:`printable`) and ``$``
    kept from starting mathtext (``'$\foo$'`` would fail the drawing).

    Example:
        >>> print(plot_text('$x$ \x1b'))
        \$x\$ \x1b
    """
    return printable(text, one_line=True).replace('$', r'\$')


def drawable_names(names: Sequence[str]) -> Tuple[List[str], Optional[str]]:
    """``(names, family)`` to draw them with (through :func:`plot_text`), or
    ``(['#0', '#1', ...], None)`` when no installed font has their
    characters."""
    names = [plot_text(n) for n in names]
    family = font_for(names)
    if family is None:
        return [f'#{i}' for i in range(len(names))], None
    return list(names), family
