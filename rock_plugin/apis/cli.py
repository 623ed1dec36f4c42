"""One clear error line for a user's mistake, a traceback only with --debug."""
import sys
from typing import Callable, List, Optional

# What a user can cause and fix: bad data, files, checkpoints, config values.
USER_ERRORS = (ValueError, KeyError, OSError)  # OSError: missing files too


def run_cli(main: Callable[[Optional[List[str]]], object],
            argv: Optional[List[str]] = None) -> int:
    """Run a tool's ``main(argv)`` (default ``sys.argv[1:]``); return the
    exit code: 2 after printing ``error: ...`` for a user error, else 0."""
    argv = sys.argv[1:] if argv is None else argv
    debug = '--debug' in argv
    from rock_plugin.utils.errors import (CheckpointError,
                                          TrainingDivergedError, WorkDirError)
    try:
        main(argv)
    except (CheckpointError, TrainingDivergedError, WorkDirError,
            *USER_ERRORS) as exc:
        if debug:
            raise
        message = str(exc) if not isinstance(exc, KeyError) else \
            f'missing key {exc}'
        if 'Original Traceback' in message:
            # re-raised from a DataLoader worker: keep the original message
            last = [ln for ln in message.splitlines() if ln.strip()][-1]
            message = last.split(': ', 1)[1] if ': ' in last else last
        from rock_plugin.utils.text import printable
        print(f'error: {printable(message)}', file=sys.stderr)
        print('(run again with --debug for the full traceback)',
              file=sys.stderr)
        return 2
    return 0
