"""Leave-classes-out splits (open-set cross-validation): the draws of the
classes left out, and each repeat's annotation files."""
import math
import os.path as osp

import numpy as np
import pytest

from rock_plugin.datasets.leave_out import (draw_left_out_classes,
                                            write_leave_out_files)
from rock_plugin.utils.errors import DataError


@pytest.mark.parametrize('num_classes,k,repeats', [
    (5, 1, 5), (11, 1, 5), (6, 2, 15), (4, 2, 6)])
def test_draws_are_seeded_and_distinct_while_subsets_last(num_classes, k,
                                                          repeats):
    draws = draw_left_out_classes(num_classes, k, repeats, seed=3)
    assert draws == draw_left_out_classes(num_classes, k, repeats, seed=3)
    assert all(len(d) == k and d == sorted(set(d)) and
               0 <= min(d) and max(d) < num_classes for d in draws)
    # repeats <= the number of subsets: no subset twice
    assert len({tuple(d) for d in draws}) == repeats
    assert len(draws) == repeats <= math.comb(num_classes, k)


def test_draws_repeat_only_after_every_subset_came():
    draws = [tuple(d) for d in draw_left_out_classes(4, 2, 9, seed=0)]
    assert len(set(draws[:6])) == 6  # all C(4, 2) subsets first
    assert len(set(draws[6:])) == 3  # then a new round, again distinct
    others = [draw_left_out_classes(11, 1, 5, seed=s) for s in range(4)]
    assert len({str(d) for d in others}) > 1  # the seed matters


def test_two_known_classes_must_remain():
    with pytest.raises(DataError, match=r'leave_out_classes=4: the data has '
                       '5 classes .* leave out 1 to 3'):
        draw_left_out_classes(5, 4, 2)
    with pytest.raises(DataError, match='leave_out_classes=0'):
        draw_left_out_classes(5, 0, 2)
    assert draw_left_out_classes(5, 3, 1, seed=0)[0].__len__() == 3


def _lines(path):
    with open(path, encoding='utf-8') as f:
        return [line.rsplit(' ', 1) for line in f.read().splitlines()]


def test_repeat_files_hide_the_left_out_classes(tmp_path):
    names = ['a', 'b', 'c', 'd']
    labels = np.repeat(np.arange(4), 4)
    paths = [f'/data/{names[y]}/{i}.jpg' for i, y in enumerate(labels)]
    folds = np.tile([0, 1], 8)
    repeats = write_leave_out_files(str(tmp_path), paths, labels, folds,
                                    names, [[1], [0, 3]])
    assert repeats[0] == dict(repeat=0, val_fold=0, left_out=['b'],
                              known=['a', 'c', 'd'])
    assert repeats[1]['val_fold'] == 1 and \
        repeats[1]['known'] == ['b', 'c'] and \
        repeats[1]['left_out'] == ['a', 'd']
    r0 = osp.join(tmp_path, 'repeat_0')
    train, val, open_set = (_lines(osp.join(r0, f'{n}.txt'))
                            for n in ('train', 'val', 'open_set'))
    assert not any('/b/' in p for p, _ in train + val)
    assert {p.split('/')[2] for p, _ in train} == {'a', 'c', 'd'}
    # labels in known-class order: c is 1, d is 2
    assert {(p.split('/')[2], y) for p, y in train + val} == {
        ('a', '0'), ('c', '1'), ('d', '2')}
    assert len(train) == len(val) == 6 and not set(
        p for p, _ in train) & set(p for p, _ in val)
    # open set: the validation fold plus every image of b, labelled 3
    assert sorted(open_set) == sorted(val + [[p, '3'] for p in paths[4:8]])
    r1 = _lines(osp.join(tmp_path, 'repeat_1', 'open_set.txt'))
    unknown = {p.split('/')[2]: y for p, y in r1 if int(y) >= 2}
    assert unknown == {'a': '2', 'd': '3'}
    assert osp.isfile(osp.join(tmp_path, 'folds.csv'))
