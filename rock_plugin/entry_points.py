"""The console scripts ``rock-train``, ``rock-test``, ``rock-predict``,
``rock-cv``, ``rock-cam``, ``rock-demo`` and ``rock-export``: each runs
one of ``tools/*.py``, which own the command line, with its arguments.

The tools come from the checkout of an editable install (``pip install -e
.``), else from the copies a wheel ships in ``rock_plugin/.mim/`` (laid
out as mmpretrain's, written by ``setup.py``). A config argument may name
a shipped config (``rock-train rock_quickstart``): the tools resolve it.

Example:
    >>> # rock-train rock_quickstart --data-root /data/rocks is
    >>> import sys
    >>> sys.argv = ['rock-train', 'rock_quickstart',
    ...             '--data-root', '/data/rocks']
    >>> train()  # exits with the tool's code
"""
import os.path as osp
import sys

_PACKAGE = osp.dirname(osp.abspath(__file__))


def tools_root() -> str:
    """The folder holding ``tools/``, ``configs/`` and ``demo/``.

    Returns:
        str: The checkout of an editable install, else the installed
        package's ``.mim`` folder.
    """
    checkout = osp.dirname(_PACKAGE)
    if osp.isfile(osp.join(checkout, 'setup.py')) and \
            osp.isdir(osp.join(checkout, 'tools')):
        return checkout
    return osp.join(_PACKAGE, '.mim')


def run_tool(script: str) -> None:
    """Run ``tools/<script>`` as ``python tools/<script>`` would, with
    ``sys.argv[1:]`` as its arguments; its exit code ends the process.

    Args:
        script (str): The tool's file in ``tools/``, e.g. ``'train.py'``.
    """
    path = osp.join(tools_root(), 'tools', script)
    if not osp.isfile(path):
        print(f'error: {path}: not found; this rock_plugin was installed '
              'without its tools (reinstall it from a wheel or a checkout)',
              file=sys.stderr)
        sys.exit(2)
    # As for a script: its own folder first on the path, for its helpers
    # (_common, _config_flags).
    sys.path.insert(0, osp.dirname(path))
    # Not runpy.run_path: it sets sys.argv[0] to the file, and argparse
    # would then show ``train.py`` instead of ``rock-train`` in --help.
    with open(path, encoding='utf-8') as f:
        code = compile(f.read(), path, 'exec')
    exec(code, dict(__name__='__main__', __file__=path,
                    __builtins__=__builtins__))


def train() -> None:
    """``rock-train``: ``tools/train.py``."""
    run_tool('train.py')


def test() -> None:
    """``rock-test``: ``tools/test.py``."""
    run_tool('test.py')


def predict() -> None:
    """``rock-predict``: ``tools/predict.py``."""
    run_tool('predict.py')


def cross_validate() -> None:
    """``rock-cv``: ``tools/cross_validate.py``."""
    run_tool('cross_validate.py')


def vis_cam() -> None:
    """``rock-cam``: ``tools/vis_cam.py``."""
    run_tool('vis_cam.py')


def web_demo() -> None:
    """``rock-demo``: ``tools/web_demo.py``."""
    run_tool('web_demo.py')


def export_onnx() -> None:
    """``rock-export``: ``tools/export_onnx.py``."""
    run_tool('export_onnx.py')
