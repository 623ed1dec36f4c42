"""Open-set cross-validation summary: per-repeat metrics against values
worked out by hand, mean ± std over repeats, and the files."""
import os.path as osp

import numpy as np
import pytest

from conftest import read_csv_dicts, read_json
from rock_plugin.evaluation.open_set_cv import (OPEN_SET_METRICS,
                                                format_open_set_table,
                                                open_set_metrics,
                                                save_open_set_results,
                                                summarize_open_set)


def _pred(label, scores, novelty, path='x.jpg'):
    return dict(img_path=path, gt_label=label, pred_score=scores,
                novelty=novelty)


# 2 known classes (labels 0, 1); label 2 is a left-out class.
PREDS = [
    _pred(0, [0.9, 0.1], 0.0), _pred(1, [0.2, 0.8], 1.0),
    _pred(1, [0.6, 0.4], 2.0),  # a mistake
    _pred(0, [0.7, 0.3], 3.0),
    _pred(2, [0.55, 0.45], 2.5), _pred(2, [0.95, 0.05], 4.0)]


def test_repeat_metrics_by_hand():
    m = open_set_metrics(PREDS, num_known=2, threshold=2.5)
    # novelty: unknown 2.5 beats 3 of 4 knowns, 4.0 all 4 -> 7/8
    assert m['auroc'] == pytest.approx(7 / 8)
    # 1 - max score: knowns .1 .2 .4 .3, unknowns .45 (beats 4) and .05
    # (beats none) -> 4/8
    assert m['msp_auroc'] == pytest.approx(0.5)
    assert m['unknown_flagged'] == pytest.approx(50.0)  # 4.0 > 2.5 only
    assert m['known_flagged'] == pytest.approx(25.0)  # 3.0 > 2.5
    assert m['top1'] == pytest.approx(75.0)  # unknowns do not count
    assert (m['known_images'], m['unknown_images']) == (4, 2)
    assert m['threshold'] == 2.5
    with pytest.raises(ValueError, match='no novelty score'):
        open_set_metrics([_pred(0, [1, 0], None)], 2, 0.0)


def _rows():
    rows = []
    for r, (auroc, top1) in enumerate([(0.9, 100.0), (0.7, 80.0),
                                       (0.8, 90.0)]):
        rows.append(dict(repeat=r, left_out=[f'c{r}'],
                         known=['k0', 'k1'], auroc=auroc, msp_auroc=0.5,
                         unknown_flagged=10.0 * r, known_flagged=5.0,
                         top1=top1, threshold=1.0 + r, known_images=2,
                         unknown_images=1))
    return rows


def test_mean_and_std_over_repeats():
    summary = summarize_open_set(_rows())
    assert summary['num_repeats'] == 3
    assert summary['mean']['auroc'] == pytest.approx(0.8)
    assert summary['std']['auroc'] == pytest.approx(np.std([.9, .7, .8],
                                                           ddof=1))
    assert summary['mean']['top1'] == pytest.approx(90.0)
    assert summary['std']['top1'] == pytest.approx(10.0)
    assert summary['std']['msp_auroc'] == 0.0
    assert set(summary['mean']) == {k for k, _ in OPEN_SET_METRICS}
    one = summarize_open_set(_rows()[:1])
    assert one['std']['auroc'] == 0.0 and one['mean']['auroc'] == 0.9
    table = format_open_set_table(summary, 'T')
    assert '0.800 ± 0.100' in table and '90.0 ± 10.0' in table
    assert 'c2' in table and 'AUROC novelty' in table


def test_files(tmp_path):
    summary = summarize_open_set(_rows())
    preds = {r: [_pred(0, [0.8, 0.2], 0.5, 'k.jpg'),
                 _pred(1, [0.3, 0.7], 2.0, 'k2.jpg'),
                 _pred(2, [0.6, 0.4], 1.0 + r + 0.5, 'u.jpg')]
             for r in range(3)}
    files = save_open_set_results(str(tmp_path), summary, preds)
    rows = read_csv_dicts(files['summary_csv'])
    assert [r['repeat'] for r in rows] == ['0', '1', '2', 'mean', 'std']
    assert rows[2]['left_out'] == 'c2' and rows[2]['known_images'] == '2'
    assert float(rows[3]['auroc']) == pytest.approx(0.8)
    assert float(rows[4]['top1']) == pytest.approx(10.0)
    assert read_json(files['summary_json'])['num_repeats'] == 3
    lines = read_csv_dicts(osp.join(tmp_path, 'open_set_predictions.csv'))
    assert len(lines) == 9
    first = lines[:3]
    assert [r['true'] for r in first] == ['k0', 'k1', 'c0']
    assert [r['known'] for r in first] == ['1', '1', '0']
    # flagged: novelty above the repeat's threshold (1.0 + r)
    assert [r['flagged'] for r in first] == ['0', '1', '1']
    assert first[2]['predicted'] == 'k0'
