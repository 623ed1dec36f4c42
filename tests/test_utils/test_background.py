"""A fork (a data loader starting its workers) waits for the drawings under
way, so that no worker inherits a lock a drawing thread held."""
import os
import threading
import time

from rock_plugin.utils.background import BackgroundExecutor


def _child_status(pid):
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_fork_waits_for_the_drawing_under_way():
    lock, started = threading.Lock(), threading.Event()

    def draw():  # holds a lock as cv2 or a buffered file does while busy
        with lock:
            started.set()
            time.sleep(0.5)
        return 'drawn'

    executor = BackgroundExecutor('test')
    future = executor.submit(draw)
    assert started.wait(10)
    pid = os.fork()
    if pid == 0:  # the worker needs the lock: free, not inherited held
        os._exit(0 if lock.acquire(timeout=5) else 1)
    assert future.done() and future.result() == 'drawn'
    assert _child_status(pid) == 0
    executor.shutdown(wait=True)


def test_a_fork_from_the_drawing_thread_itself_does_not_wait_for_itself():
    def fork_and_wait():
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        return _child_status(pid)

    executor = BackgroundExecutor('test')
    assert executor.submit(fork_and_wait).result(timeout=30) == 3
    executor.shutdown(wait=True)


def test_a_failed_job_does_not_block_a_fork_and_keeps_its_error():
    executor = BackgroundExecutor('test')
    future = executor.submit(lambda: 1 / 0)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert _child_status(pid) == 0
    assert isinstance(future.exception(), ZeroDivisionError)
    executor.shutdown(wait=True)
