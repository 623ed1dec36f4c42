"""Per-slide (per-sample) results: the class scores of a sample's tiles
pooled into one prediction, slide-level accuracy and the ``per_slide.csv``
table. The group key of each tile comes from the caller (the tools use
:func:`rock_plugin.datasets.kfold.group_keys`, as ``cross_validate.py
--group-by`` does)."""
from typing import Dict, List, Optional, Sequence

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write_csv

POOL_MODES = ('mean', 'logmean')
#: Measured on the bundled data (README): ties 'mean' per slide and wins
#: more often on groups of 2-3 tiles of one slide.
DEFAULT_POOL = 'logmean'
#: ``<name><number>_<tile>`` file names: the key is everything before the
#: last ``_`` when it ends in a digit (``Chert23_11.jpg`` -> ``Chert23``).
DEFAULT_GROUP_BY = r'^(.*\d)_[^_]+$'
#: Floor of a probability before its logarithm ('logmean'): a float32
#: softmax rounds to 0.0, and one tile at 0 would veto a class outright.
LOG_FLOOR = 1e-12


def pool_scores(scores, groups: Sequence[str], mode: str = 'mean'):
    """Pool the class probabilities of the tiles of each group.

    Args:
        scores: ``(N, C)`` class probabilities of ``N`` tiles.
        groups (Sequence[str]): The group (slide) key of every tile.
        mode (str): ``'mean'``: the mean of the probabilities;
            ``'logmean'``: the mean of the log-probabilities (floored at
            :data:`LOG_FLOOR`), i.e. the normalised geometric mean, in
            which one confident tile weighs more. Defaults to ``'mean'``.

    Returns:
        tuple: ``(keys, pooled, index)``: the sorted group keys, their
        ``(G, C)`` pooled probabilities (rows sum to 1) and the ``(N,)``
        group index of every tile.

    Example:
        >>> keys, pooled, _ = pool_scores([[.9, .1], [.3, .7]], ['a', 'a'])
        >>> keys, pooled.round(2).tolist()
        (['a'], [[0.6, 0.4]])
    """
    if mode not in POOL_MODES:
        raise ValueError(f'pool={mode!r}: use one of {POOL_MODES}')
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(scores) != len(groups):
        raise ValueError(f'scores of shape {scores.shape} for '
                         f'{len(groups)} group keys: give (N, C) and N keys')
    keys = sorted(set(groups))
    position = {key: i for i, key in enumerate(keys)}
    index = np.array([position[g] for g in groups], dtype=np.int64)
    counts = np.bincount(index, minlength=len(keys))[:, None]
    values = scores if mode == 'mean' else \
        np.log(np.clip(scores, LOG_FLOOR, 1.0))
    pooled = np.zeros((len(keys), scores.shape[1]))
    np.add.at(pooled, index, values)
    pooled /= counts
    if mode == 'logmean':
        pooled = np.exp(pooled - pooled.max(axis=1, keepdims=True))
    return keys, pooled / pooled.sum(axis=1, keepdims=True), index


def slide_results(scores, groups: Sequence[str],
                  labels: Optional[Sequence[int]] = None,
                  mode: str = 'mean') -> List[Dict[str, object]]:
    """One row per slide: its tiles pooled by :func:`pool_scores`.

    A slide whose tiles carry different true labels takes the label of
    most of its tiles (a tie: the lowest class index); ``other_tiles``
    counts the tiles of other labels, so such slides can be found.

    Args:
        scores: ``(N, C)`` class probabilities of the tiles.
        groups (Sequence[str]): The slide key of every tile.
        labels (Sequence[int], optional): True label of every tile.
        mode (str): ``'mean'`` or ``'logmean'``.

    Returns:
        list[dict]: Sorted by ``slide``: ``slide``, ``tiles``, ``scores``
        (pooled, a list), ``pred_label``, ``pred_score``; with ``labels``
        also ``gt_label`` and ``other_tiles``.

    Example:
        >>> rows = slide_results([[.9, .1], [.4, .6], [.2, .8]],
        ...                      ['s1', 's1', 's2'], labels=[0, 0, 1])
        >>> [(r['slide'], r['pred_label'], r['gt_label']) for r in rows]
        [('s1', 0, 0), ('s2', 1, 1)]
    """
    keys, pooled, index = pool_scores(scores, groups, mode)
    tiles = np.bincount(index, minlength=len(keys))
    rows = [dict(slide=key, tiles=int(tiles[i]), scores=pooled[i].tolist(),
                 pred_label=int(pooled[i].argmax()),
                 pred_score=float(pooled[i].max()))
            for i, key in enumerate(keys)]
    if labels is not None:
        votes = np.zeros_like(pooled, dtype=np.int64)
        np.add.at(votes, (index, np.asarray(labels, dtype=np.int64)), 1)
        for row, count in zip(rows, votes):
            row['gt_label'] = int(count.argmax())
            row['other_tiles'] = int(count.sum() - count.max())
    return rows


def slide_accuracy(rows: Sequence[dict]) -> float:
    """Slide-level top-1 accuracy (percent) of :func:`slide_results`'
    rows with ``gt_label``.

    Example:
        >>> slide_accuracy([dict(pred_label=0, gt_label=0),
        ...                 dict(pred_label=1, gt_label=0)])
        50.0
    """
    if not rows:
        return 0.0
    return 100.0 * sum(r['pred_label'] == r['gt_label']
                       for r in rows) / len(rows)


def write_slide_csv(rows: Sequence[dict], class_names: Sequence[str],
                    out_file: str) -> str:
    """Write (atomically) and return ``out_file``: ``slide, tiles,
    pred_class, pred_score``, with true labels ``true_class, correct,
    other_tiles``, then ``score/<class>`` (pooled), a row per slide.

    Example:
        >>> write_slide_csv(rows, ['a', 'b'], 'per_slide.csv')
        'per_slide.csv'
    """
    labelled = bool(rows) and 'gt_label' in rows[0]
    header = ['slide', 'tiles', 'pred_class', 'pred_score'] + (
        ['true_class', 'correct', 'other_tiles'] if labelled else []) + [
        f'score/{c}' for c in class_names]
    return atomic_write_csv(out_file, [header] + [
        [r['slide'], r['tiles'], class_names[r['pred_label']],
         f'{r["pred_score"]:.6f}'] +
        ([class_names[r['gt_label']], r['pred_label'] == r['gt_label'],
          r['other_tiles']] if labelled else []) +
        [f'{s:.6f}' for s in r['scores']] for r in rows])


def format_slide_table(rows: Sequence[dict],
                       class_names: Sequence[str]) -> str:
    """The rows as a plain-text table (slide, tiles, class, score and,
    with true labels, the true class and a mark for mistakes)."""
    from rock_plugin.utils.text import printable
    labelled = bool(rows) and 'gt_label' in rows[0]
    width = max([5] + [len(printable(r['slide'])) for r in rows])
    lines = [f'{"slide":<{width}}  {"tiles":>5}  {"class":<28} {"score":>6}'
             + ('  true class' if labelled else '')]
    for r in rows:
        line = (f'{printable(r["slide"]):<{width}}  {r["tiles"]:>5}  '
                f'{printable(class_names[r["pred_label"]]):<28} '
                f'{r["pred_score"]:>6.3f}')
        if labelled:
            wrong = '' if r['pred_label'] == r['gt_label'] else '  (wrong)'
            line += f'  {printable(class_names[r["gt_label"]])}{wrong}'
        lines.append(line)
    return '\n'.join(lines)
