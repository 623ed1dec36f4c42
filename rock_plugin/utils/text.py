"""Text from users' files shown safely: on the terminal, in logs, images,
web pages and spreadsheets.

Class names come from folder names and from model files users receive, so
they may carry terminal escapes (ESC/OSC sequences that retitle or clear a
terminal) or spreadsheet formulas (OWASP "CSV injection").
"""
import logging
import re
from typing import Any

# C0 controls but tab/newline are escaped; so are DEL and the C1 controls
# (U+0080-U+009F: a lone CSI/OSC byte acts like ESC [ / ESC ] on many
# terminals) and the bidi overrides that can reorder what a user reads.
_OTHERS = '\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069'
_CONTROL = re.compile(f'[\x00-\x08{_OTHERS}]')
_CONTROL_ONE_LINE = re.compile(f'[\x00-\x0a{_OTHERS}]')  # tab, LF too
# OWASP: cells starting with these are read as formulas by Excel/LibreOffice.
_FORMULA_START = ('=', '+', '-', '@', '\t', '\r')
# A plain number such as '-0.5' or '1e-05' is data, not a formula.
_NUMBER = re.compile(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)')


def printable(text: Any, one_line: bool = False) -> str:
    """``text`` with control characters written as ``\\xNN`` / ``\\uNNNN``
    escapes, for the terminal, logs, images and web pages.

    Args:
        text: Anything; it is turned into ``str`` first.
        one_line (bool): Escape tab and newline too (a name in a table
            cell or an image caption). Defaults to False (log messages).

    Returns:
        str: The text without raw control characters.

    Example:
        >>> printable('Chert\\x1b]0;pwned\\x07')
        'Chert\\\\x1b]0;pwned\\\\x07'
    """
    def escape(match):
        code = ord(match.group())
        return f'\\x{code:02x}' if code < 0x100 else f'\\u{code:04x}'
    pattern = _CONTROL_ONE_LINE if one_line else _CONTROL
    return pattern.sub(escape, str(text))


def _runs_as_formula(text: str) -> bool:
    # Quotes are skipped so that a name that itself starts with "'" gets
    # one more, and from_csv_cell(csv_cell(x)) == x for every string.
    text = text.lstrip("'")
    return text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text)


def csv_cell(value: Any) -> Any:
    """A CSV cell neutralised the OWASP way: a string starting with ``=``,
    ``+``, ``-``, ``@``, tab or CR (after any ``'``) gets a leading ``'`` so
    spreadsheets show it as text. Numbers, and strings that are plain
    numbers (``'-0.5'``, scores and losses), are kept as they are.

    Args:
        value: The cell.

    Returns:
        The cell, prefixed with ``'`` where a spreadsheet would run it;
        :func:`from_csv_cell` undoes it.

    Example:
        >>> csv_cell('=HYPERLINK("http://x")'), csv_cell('-0.5')
        ('\\'=HYPERLINK("http://x")', '-0.5')
    """
    if isinstance(value, str) and _runs_as_formula(value):
        return "'" + value
    return value


def from_csv_cell(value: Any) -> Any:
    """Undo :func:`csv_cell` on a cell read back from our own CSV files.

    Args:
        value: The cell as read (other types are returned as they are).

    Returns:
        The value that was written.

    Example:
        >>> from_csv_cell("'=SUM(1)"), from_csv_cell("'plain")
        ('=SUM(1)', "'plain")
    """
    if isinstance(value, str) and value.startswith("'") and \
            _runs_as_formula(value[1:]):
        return value[1:]
    return value


class PrintableFilter(logging.Filter):
    """A ``logging.Filter`` that passes every record with its message
    escaped by :func:`printable`. Level colours survive: the formatter adds
    them around the message.

    Example:
        >>> logger.addFilter(PrintableFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = printable(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


def escape_log_records(logger: logging.Logger) -> logging.Logger:
    """Attach one :class:`PrintableFilter` to ``logger`` (again: no-op), so
    class and file names it logs cannot drive the terminal.

    Args:
        logger (logging.Logger): E.g. a runner's ``MMLogger``.

    Returns:
        logging.Logger: ``logger``.

    Example:
        >>> escape_log_records(runner.logger)
    """
    if not any(isinstance(f, PrintableFilter) for f in logger.filters):
        logger.addFilter(PrintableFilter())
    return logger
