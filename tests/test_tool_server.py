"""The test harness's tool server: a run that hangs is killed with its
workers and says where it hung."""
import os
import time

import pytest
from tool_server import ToolServer, ToolTimeout

HANGING_TOOL = '''
import multiprocessing as mp, time

def wait_in_worker():
    time.sleep(600)

if __name__ == '__main__':
    worker = mp.get_context('fork').Process(target=wait_in_worker)
    worker.start()
    open(%r, 'w').write(str(worker.pid))
    print('started', flush=True)
    worker.join()
'''


def test_a_hanging_run_dumps_its_stacks_and_its_workers_die(tmp_path):
    pid_file = tmp_path / 'worker.pid'
    tool = tmp_path / 'hang.py'
    tool.write_text(HANGING_TOOL % str(pid_file))
    with ToolServer(tmp_path / 'runs') as server:
        with pytest.raises(ToolTimeout) as info:
            server(str(tool), cwd=tmp_path, timeout=8)
        message = str(info.value)
        assert 'started' in message  # stdout's tail
        # both processes' stacks: the run waiting, its worker sleeping
        assert 'in wait_in_worker' in message, message
        assert 'in join' in message, message
        worker = int(pid_file.read_text())
        for _ in range(50):  # the SIGKILL reached the worker too
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f'worker {worker} outlived the killed run')
        # the server goes on with the next run
        (tmp_path / 'ok.py').write_text('print("fine")')
        assert server(str(tmp_path / 'ok.py'), cwd=tmp_path).stdout == \
            'fine\n'
