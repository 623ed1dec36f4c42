"""The exactness checks the feature-caching loops share."""
import os

import torch
from mmpretrain.structures import DataSample

from rock_plugin.engine.runners.feature_cache_keys import (
    dataset_files_key, shared_rows, tensor_checksum, why_not_exact)


class _Files:
    """A dataset's minimum: its length and each image's info."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def get_data_info(self, i):
        return dict(img_path=self.paths[i], gt_label=i % 2)


def test_files_key_changes_with_an_edited_image(tmp_path):
    paths = [str(tmp_path / f'{i}.jpg') for i in range(3)]
    for p in paths:
        with open(p, 'wb') as f:
            f.write(b'x')
    dataset = _Files(paths)
    key = dataset_files_key(dataset)
    assert dataset_files_key(dataset) == key
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert dataset_files_key(dataset) != key


def test_checksum_sees_writes_through_data():
    w = torch.nn.Parameter(torch.zeros(3))
    before = tensor_checksum([w])
    w.data[1] = 1.0  # no version-counter bump
    assert tensor_checksum([w]) != before
    assert tensor_checksum([w.detach()]) != tensor_checksum([w])  # grad flag


def test_shared_rows_by_sample_index_and_label():
    feats, labels = torch.arange(10.).view(5, 2), [0, 1, 0, 1, 0]

    def sample(idx, label):
        return DataSample(metainfo=dict(sample_idx=idx)).set_gt_label(label)

    rows = shared_rows(((feats, ), labels), [sample(3, 1), sample(0, 0)])
    assert torch.equal(rows[0], feats[[3, 0]])
    # another label, a missing or out-of-range index: not taken
    assert shared_rows(((feats, ), labels), [sample(3, 0)]) is None
    assert shared_rows(((feats, ), labels), [DataSample()]) is None
    assert shared_rows(((feats, ), labels), [sample(9, 0)]) is None
    assert shared_rows(((feats, ), labels), []) is None


def test_why_not_exact_names_the_random_transform():
    from types import SimpleNamespace

    from mmcv.transforms import LoadImageFromFile, RandomFlip
    from mmpretrain.datasets.transforms import PackInputs

    def dataset(*transforms):
        return SimpleNamespace(pipeline=SimpleNamespace(
            transforms=list(transforms)))

    plain = dataset(LoadImageFromFile(), PackInputs())
    flip = dataset(LoadImageFromFile(), RandomFlip(prob=0.5), PackInputs())
    assert why_not_exact(plain) is None
    assert why_not_exact(flip, hint='!') == \
        'the pipeline holds RandomFlip, not known to be deterministic!'
    assert why_not_exact(flip, {'LoadImageFromFile', 'RandomFlip',
                                'PackInputs'}) is None
    assert 'no pipeline' in why_not_exact(object())
