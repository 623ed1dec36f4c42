"""Annotated prediction videos (OpenCV), for ``tools/predict.py``."""
import contextlib
import os
import os.path as osp

import numpy as np

from .annotate import draw_topk_on_frame


class AnnotatedVideoWriter:
    """Video frames with their top-k classes drawn on (OpenCV), written to a
    temporary file renamed on :meth:`close`: a crash never leaves a truncated
    video under the final name.

    Args:
        path (str): Output video (``.mp4``: MPEG-4 Part 2, ``.avi``: MJPG).
        fps (float): Frame rate of the output.
    """

    def __init__(self, path: str, fps: float):
        self.path = path
        self.fps = fps if fps and fps > 0 else 1.0
        base, ext = osp.splitext(path)
        self._tmp = osp.join(osp.dirname(osp.abspath(path)),
                             f'.{osp.basename(base)}.{os.getpid()}.tmp'
                             f'{ext or ".mp4"}')
        self._writer = None
        self.frames = 0

    def write(self, frame: np.ndarray, topk) -> None:
        """Draw ``topk`` on a BGR frame and append it."""
        import cv2
        if self._writer is None:
            os.makedirs(osp.dirname(osp.abspath(self.path)), exist_ok=True)
            codec = 'MJPG' if self._tmp.lower().endswith('.avi') else 'mp4v'
            self._writer = cv2.VideoWriter(
                self._tmp, cv2.VideoWriter_fourcc(*codec), self.fps,
                (frame.shape[1], frame.shape[0]))
            if not self._writer.isOpened():
                raise ValueError(f'{self.path}: OpenCV cannot write this '
                                 'video format (use .mp4 or .avi)')
        self._writer.write(draw_topk_on_frame(frame, topk))
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and move it to ``path`` (nothing if no frame);
        with ``keep=False`` drop it instead."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if keep:
                os.replace(self._tmp, self.path)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(self._tmp)

    def __del__(self):
        self.close(keep=False)  # never closed (an error on the way)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(keep=exc_type is None)
