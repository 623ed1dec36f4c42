"""TrainingPreviewHook reports every failed drawing, also one that ends
while the finished drawings are being collected."""
from concurrent.futures import Future
from types import SimpleNamespace
from unittest import mock

import numpy as np

from rock_plugin.engine.hooks import TrainingPreviewHook


class _EndsWhileAsked(Future):
    """A drawing that failed; ``done()`` says False the first time it is
    asked, True after (it finished in between)."""

    def __init__(self):
        super().__init__()
        self.set_exception(RuntimeError('font missing'))
        self.asked = 0

    def done(self):
        self.asked += 1
        return self.asked > 1


def test_a_drawing_error_ending_during_submit_is_reported(tmp_path):
    hook = TrainingPreviewHook()
    runner = SimpleNamespace(work_dir=str(tmp_path), logger=mock.Mock())
    late = _EndsWhileAsked()
    hook._pending = [late]
    hook._submit(runner, lambda: np.zeros((8, 8, 3), np.uint8), 'x.jpg')
    assert late.asked == 1  # asked once: still pending, not dropped
    hook.after_run(runner)
    warnings = [c.args[0] for c in runner.logger.warning.call_args_list]
    assert warnings == ["TrainingPreviewHook: RuntimeError('font missing')"]
    assert (tmp_path / 'x.jpg').is_file()
