"""Shared fixtures: small generated images, paths, running tools as a user."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DATA = osp.join(REPO, '..', 'shared', 'data', 'rock_thin_sections')
TINY_CONFIG = osp.join(REPO, 'tests', 'data', 'tiny_config.py')
TINY_CLASSES = ('alpha', 'beta', 'gamma')


def make_class_folders(root, classes=TINY_CLASSES, per_class=8, size=(48, 56),
                       seed=0):
    """Write ``per_class`` small JPEGs per class; each class has its own hue so
    that even a tiny model can learn them."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        os.makedirs(osp.join(root, name), exist_ok=True)
        for i in range(per_class):
            img = np.zeros((*size, 3), np.uint8)
            img[..., c % 3] = 180
            img = np.clip(img + rng.integers(0, 60, img.shape), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(
                osp.join(root, name, f'{name}_{i}.jpg'), quality=95)
    return root


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """A folder-per-class dataset: 3 classes x 8 images of 48x56."""
    return make_class_folders(str(tmp_path_factory.mktemp('tiny_data')))


@pytest.fixture(scope='session')
def shared_data():
    if not osp.isdir(SHARED_DATA):
        pytest.skip(f'shared real data not found at {SHARED_DATA}')
    return SHARED_DATA


def run_tool(*args, cwd=REPO, env=None, timeout=600, check=True):
    """Run ``python tools/<args>`` as a user would; return the CompletedProcess."""
    # One thread per process: the 2 CI cores are shared by parallel tests.
    full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1',
                **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{args} exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}'
            f'\nSTDERR:\n{proc.stderr[-4000:]}')
    return proc
