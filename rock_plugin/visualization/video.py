"""Annotated prediction videos (OpenCV), for ``tools/predict.py``."""
import numpy as np

from .annotate import draw_topk_on_frame


class AnnotatedVideoWriter:
    """Video frames with their top-k classes drawn on (OpenCV).

    Written to a temporary file beside ``path`` and renamed on
    :meth:`close`, so a crash never leaves a truncated video under the
    final name.

    Args:
        path (str): Output video (``.mp4``: MPEG-4 Part 2, ``.avi``: MJPG).
        fps (float): Frame rate of the output.

    Example:
        >>> with AnnotatedVideoWriter('out.mp4', fps=2.5) as video:
        ...     video.write(frame_bgr, [('Chert', 0.93), ('Bauxite', 0.04)])
    """

    def __init__(self, path: str, fps: float):
        import os
        import os.path as osp
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
        import os
        import os.path as osp

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

    def close(self) -> None:
        """Finish the file and move it to ``path`` (nothing if no frame)."""
        import os
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)

    def __del__(self):
        # Never closed (an error on the way): drop the partial file.
        self.__exit__(RuntimeError)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        elif self._writer is not None:
            import contextlib
            import os
            self._writer.release()
            self._writer = None
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
