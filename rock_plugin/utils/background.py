"""A background thread for drawings that never overlaps a fork.

Why: a data loader forks its workers when an epoch starts, right after the
hooks have handed the last validation's pictures to a drawing thread. A
thread that is inside cv2, matplotlib or a buffered file at that moment can
leave one of their locks held in the forked worker, which then blocks on it
forever (POSIX: only the forking thread exists in the child). A fork
therefore first waits for the drawings under way; they take well under a
second, and the threads stay free to overlap everything else.
"""
import os
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor, wait

_EXECUTORS: 'weakref.WeakSet[BackgroundExecutor]' = weakref.WeakSet()


class BackgroundExecutor(ThreadPoolExecutor):
    """mmengine hooks' drawing thread: a one-thread ``ThreadPoolExecutor``
    whose unfinished jobs every ``os.fork`` of this process waits for.

    Args:
        thread_name_prefix (str): Name of the thread, for stack dumps.

    Example:
        >>> executor = BackgroundExecutor('HistoryFigureHook')
        >>> future = executor.submit(print, 'drawn')
        >>> executor.shutdown(wait=True)
    """

    def __init__(self, thread_name_prefix: str = ''):
        super().__init__(max_workers=1, thread_name_prefix=thread_name_prefix)
        self._unfinished = set()
        self._thread_id = None
        _EXECUTORS.add(self)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        def job():
            self._thread_id = threading.get_ident()
            return fn(*args, **kwargs)

        future = super().submit(job)
        self._unfinished.add(future)
        future.add_done_callback(self._unfinished.discard)
        return future

    def wait_unfinished(self) -> None:
        """Block until every job submitted so far has run (its errors stay
        in its future); a call from the executor's own thread returns."""
        if threading.get_ident() != self._thread_id:
            wait(list(self._unfinished))


def _before_fork() -> None:
    for executor in list(_EXECUTORS):
        executor.wait_unfinished()


os.register_at_fork(before=_before_fork)
