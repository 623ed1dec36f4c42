"""Per-slide pooling (rock_plugin.evaluation.slide_results) and the slide
key of the default --group-by expression."""
import csv

import numpy as np
import pytest

from rock_plugin.datasets.kfold import group_keys
from rock_plugin.evaluation.slide_results import (DEFAULT_GROUP_BY,
                                                  LOG_FLOOR, pool_scores,
                                                  slide_accuracy,
                                                  slide_results,
                                                  write_slide_csv)
from rock_plugin.utils.errors import DataError


def _generated(seed=0, slides=5, classes=4):
    """Dirichlet tile probabilities of slides of 1-6 tiles, keys shuffled."""
    rng = np.random.default_rng(seed)
    groups = [f's{i}' for i in range(slides)
              for _ in range(rng.integers(1, 7))]
    groups = list(rng.permutation(groups))
    return rng.dirichlet(np.ones(classes) * 0.7, len(groups)), groups


def test_mean_is_the_mean_of_each_slides_probabilities():
    scores, groups = _generated()
    keys, pooled, index = pool_scores(scores, groups, 'mean')
    assert keys == sorted(set(groups))
    for k, key in enumerate(keys):
        mine = scores[[g == key for g in groups]]
        np.testing.assert_allclose(pooled[k], mine.mean(0), atol=1e-12)
        assert (index == k).sum() == len(mine)


def test_logmean_is_the_normalised_geometric_mean():
    scores, groups = _generated(seed=1)
    keys, pooled, _ = pool_scores(scores, groups, 'logmean')
    for k, key in enumerate(keys):
        geo = np.prod(scores[[g == key for g in groups]], axis=0) ** (
            1 / groups.count(key))
        np.testing.assert_allclose(pooled[k], geo / geo.sum(), rtol=1e-9)


def test_the_two_modes_differ_where_one_tile_rules_a_class_out():
    # mean: class 0 (0.8 + 0) beats class 1 (0.2 + 0.3); the geometric
    # mean keeps only class 1, the one no tile rules out.
    scores, slide = [[0.8, 0.2, 0.0], [0.0, 0.3, 0.7]], ['s', 's']
    assert slide_results(scores, slide, mode='mean')[0]['pred_label'] == 0
    row = slide_results(scores, slide, mode='logmean')[0]
    assert row['pred_label'] == 1 and np.isfinite(row['scores']).all()
    # the floor: an exact 0 is LOG_FLOOR, so no NaN and rows sum to 1
    _, pooled, _ = pool_scores([[1.0, 0.0], [1.0, 0.0]], ['s', 's'],
                               'logmean')
    np.testing.assert_allclose(pooled, [[1 / (1 + LOG_FLOOR),
                                         LOG_FLOOR / (1 + LOG_FLOOR)]])


def test_mixed_labels_take_most_tiles_and_ties_the_lowest_class():
    rows = slide_results(np.full((5, 3), 1 / 3), ['a', 'a', 'a', 'b', 'b'],
                         labels=[2, 1, 2, 1, 0])
    assert [(r['slide'], r['gt_label'], r['other_tiles']) for r in rows] \
        == [('a', 2, 1), ('b', 0, 1)]


def test_slide_accuracy_and_rows():
    scores = [[.9, .1], [.6, .4], [.2, .8], [.7, .3]]
    rows = slide_results(scores, ['x', 'x', 'y', 'z'], [0, 0, 1, 1])
    assert [r['tiles'] for r in rows] == [2, 1, 1]
    assert [r['pred_label'] for r in rows] == [0, 1, 0]
    assert rows[0]['pred_score'] == pytest.approx(0.75)
    assert slide_accuracy(rows) == pytest.approx(200 / 3)
    assert slide_accuracy([]) == 0.0


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match='pool='):
        pool_scores([[1.0]], ['a'], 'median')
    with pytest.raises(ValueError, match='2 group keys'):
        pool_scores([[1.0]], ['a', 'b'])


def test_per_slide_csv(tmp_path):
    rows = slide_results([[.9, .1], [.3, .7]], ['S1', '=S2'], [0, 0])
    path = write_slide_csv(rows, ['Chert', 'Bauxite'],
                           str(tmp_path / 'per_slide.csv'))
    with open(path, newline='', encoding='utf-8') as f:
        table = list(csv.reader(f))
    assert table[0] == ['slide', 'tiles', 'pred_class', 'pred_score',
                        'true_class', 'correct', 'other_tiles',
                        'score/Chert', 'score/Bauxite']
    # sorted keys; a formula-like name is written as text
    assert table[1][:7] == ["'=S2", '1', 'Bauxite', '0.700000', 'Chert',
                            'False', '0']
    assert table[2][:7] == ['S1', '1', 'Chert', '0.900000', 'Chert', 'True',
                            '0']
    unlabelled = slide_results([[.9, .1]], ['S1'])
    write_slide_csv(unlabelled, ['Chert', 'Bauxite'], path)
    with open(path, newline='', encoding='utf-8') as f:
        assert next(csv.reader(f)) == ['slide', 'tiles', 'pred_class',
                                       'pred_score', 'score/Chert',
                                       'score/Bauxite']


def test_default_expression_reads_name_number_tile():
    paths = ['d/Chert/Chert23_11.jpg',
             'Chamosite-HematiteOolite26_38.jpg',
             'x/Slide_A3_12.png', 'S1_2_3.tif']
    assert group_keys(paths, DEFAULT_GROUP_BY) == [
        'Chert23', 'Chamosite-HematiteOolite26', 'Slide_A3', 'S1_2']


def test_a_name_the_expression_misses_is_one_line_naming_it():
    with pytest.raises(DataError) as err:
        group_keys(['a/Chert23_11.jpg', 'a/overview.jpg'], DEFAULT_GROUP_BY)
    message = str(err.value)
    assert '\n' not in message and 'overview.jpg' in message
    assert 'does not match 1 of the 2 file names' in message
