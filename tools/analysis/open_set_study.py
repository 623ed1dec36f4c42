"""How the head's inputs are normalised and how novelty is scored, measured
on cached features of the frozen backbone.

``python tools/analysis/open_set_study.py configs/rock_quickstart.py``
reproduces the study behind two choices of the quick start: the neck's
``l2_scale=16`` (``ConcatGlobalAveragePooling``) and the novelty score of
``OpenSetLinearClsHead`` (z-scored nearest-neighbour cosine distance plus
z-scored energy), with the temperature's lower bound of 1
(:func:`~rock_plugin.evaluation.functional.calibration.fit_temperature`).

1. **Features, once.** The config's model (pretrained, frozen backbone, on
   its fast path) pools every image of the data with the neck's
   ``l2_scale`` off (raw vectors: every normalisation is replayed from
   them): the centre view by the test pipeline, and ``--views`` augmented
   views by the training pipeline, view ``v`` drawn as training epoch ``v``
   draws with seed ``--seed``. They are cached in ``--work-dir``
   (``features_<key>.npz``; the key covers config, data files, views and
   seed), so a rerun starts at step 2.
2. **Normalisations** (``--norms``: ``raw``, ``l2x<S>`` = unit length times
   S, ``bn`` = BatchNorm without affine, ``zscore`` = fixed standardisation
   by the training features) on ``--folds`` stratified folds: epoch-1
   training loss, mean largest ``|logit|``, top-1 and the expected
   calibration error (ECE, 15 bins) of the validation fold; then the
   temperature fitted on that fold with the lower bound 1 (as
   ``OpenSetCalibrationHook``) and without (0.05), and the ECE with it, in
   the fold (optimistic) and with the T fitted on the other folds' logits.
3. **Novelty**, by leaving ``--leave-out`` classes out (``--repeats`` draws,
   ``--folds`` folds of the known images each): a head (the config's
   normalisation, and raw) trains on the known classes' training folds; the
   validation fold (known) and every image of the left-out classes
   (unknown) are scored by max softmax, energy ``-logsumexp(logits)``, the
   cosine distance to the nearest training feature (kNN-1), Mahalanobis
   distance to the nearest class mean (shared covariance, Ledoit-Wolf
   shrinkage), and the head's fusion (kNN-1 and energy, each z-scored on
   the known validation images). Per method: AUROC (unknown positive) and
   the share of unknowns flagged at the threshold that keeps
   ``--keep-known`` of the known validation images, mean +- std over the
   repeats x folds.

Why replay: the backbone is frozen, so training changes the head alone and
sees the backbone's pooled features of each epoch's augmented crops. Head
training on cached features (the config's optimizer, schedule, loss, batch
size and epochs; each epoch one cached view per image) is what training
does, minus the randomness of fresh crops; a fold takes a second instead
of minutes, so every variant runs on the same folds. Numbers are of this
replay, not of ``tools/train.py`` runs (``tools/cross_validate.py
--leave-out-classes`` measures the trained model itself).

Tables are printed as Markdown; everything, per fold and per run, is saved
as JSON (``--out``).

Example:
    python tools/analysis/open_set_study.py configs/rock_quickstart.py \\
        --repeats 5 --leave-out 3 --out study.json
"""
import argparse
import copy
import hashlib
import json
import logging
import os.path as osp
import sys
import time

import numpy as np

# Run as ``python tools/analysis/x.py``: tools/ holds _common.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import (add_common_args, check_output_not_input,  # noqa: E402
                     flag_hint, run, setup_env, shipped_config)

DEFAULT_NORMS = 'raw,l2x8,l2x16,l2x30,bn,zscore'
FREE_T_BOUNDS = (0.05, 100.0)  # "without the lower bound"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Replay head training on cached frozen-backbone '
        'features: compare feature normalisations (loss, logits, top-1, '
        'calibration) and novelty scores (leaving classes out).')
    parser.add_argument('config', type=shipped_config,
                        help='config file (e.g. configs/rock_quickstart.py)')
    parser.add_argument('--data-root', help='folder per class (default: '
                        "the config's data)")
    parser.add_argument('--views', type=int, default=4,
                        help='augmented training views cached per image '
                        '(default 4)')
    parser.add_argument('--folds', type=int, default=5,
                        help='stratified folds (default 5)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='draws of the classes left out (default 5)')
    parser.add_argument('--leave-out', type=int, default=3,
                        help='classes left out per draw (default 3)')
    parser.add_argument('--epochs', type=int, default=None,
                        help="replayed epochs (default: the config's "
                        'max_epochs)')
    parser.add_argument('--norms', default=DEFAULT_NORMS,
                        help='normalisations compared, comma-separated: '
                        'raw, l2x<scale>, bn, zscore (default '
                        f'{DEFAULT_NORMS})')
    parser.add_argument('--keep-known', type=float, default=0.95,
                        help='share of known images the novelty threshold '
                        'keeps (default 0.95)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of views, folds, draws, heads (default 0)')
    parser.add_argument('--work-dir', default='work_dirs/open_set_study',
                        help='feature cache folder (default '
                        'work_dirs/open_set_study)')
    parser.add_argument('--out', help='JSON results (default: '
                        '<work-dir>/open_set_study.json)')
    add_common_args(parser, device='cpu', distributed=False)
    args = parser.parse_args(argv)
    for flag in ('views', 'repeats', 'leave_out', 'epochs'):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f'--{flag.replace("_", "-")} must be at least '
                             f'1, got {value}')
    if args.folds < 2:
        raise ValueError(f'--folds must be at least 2, got {args.folds}')
    if not 0 < args.keep_known < 1:
        raise ValueError(f'--keep-known must be in (0, 1), got '
                         f'{args.keep_known}')
    args.norms = [n.strip() for n in args.norms.split(',') if n.strip()]
    if not args.norms:
        raise ValueError('--norms: give at least one normalisation')
    for norm in args.norms:
        _check_norm(norm)
    if args.out is None:
        args.out = osp.join(args.work_dir, 'open_set_study.json')
    return args


def _check_norm(norm: str) -> str:
    if norm in ('raw', 'bn', 'zscore'):
        return norm
    try:
        if norm.startswith('l2x') and float(norm[3:]) > 0:
            return norm
    except ValueError:
        pass
    raise ValueError(f'--norms {norm}: unknown normalisation; use raw, '
                     'l2x<scale> (e.g. l2x16), bn or zscore')


# -- 1. features ------------------------------------------------------------
def _datasets(cfg):
    """The whole data (the config's split undone) through the test and the
    training pipeline."""
    from mmpretrain.registry import DATASETS

    from rock_plugin.datasets import RockDataset
    from rock_plugin.utils.registry_names import is_registered_subclass
    base = copy.deepcopy(cfg.train_dataloader.dataset)
    if not is_registered_subclass(DATASETS, base, RockDataset):
        raise ValueError('the study needs train_dataloader.dataset of type '
                         f"RockDataset, got {base.get('type')!r}")
    # test_mode: a failed image is an error, never a random substitute
    base.update(split=None, test_mode=True)
    test = dict(base, pipeline=cfg.test_dataloader.dataset.pipeline)
    return DATASETS.build(test), DATASETS.build(base)


def config_norm(cfg) -> str:
    """The config's normalisation of the pooled features, as in
    ``--norms`` (``l2x16`` for the quick start's neck)."""
    scale = (cfg.model.get('neck') or {}).get('l2_scale')
    return f'l2x{scale:g}' if scale else 'raw'


def _study_model(cfg):
    """The config's model, pretrained, with raw pooled features (the
    neck's ``l2_scale`` off)."""
    from mmengine.logging import MMLogger
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if (model_cfg.get('neck') or {}).get('l2_scale') is not None:
        model_cfg.neck.l2_scale = None
    model = MODELS.build(model_cfg)
    # mmengine logs every initialised tensor at INFO (hundreds of lines)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.eval()


def _fingerprint(cfg, dataset, args) -> str:
    files = [(str(dataset.get_data_info(i)['img_path']),
              int(dataset.get_data_info(i)['gt_label']))
             for i in range(len(dataset))]
    stamp = [(p, y, osp.getsize(p), int(osp.getmtime(p))) for p, y in files]
    text = json.dumps(dict(
        model=cfg.model.to_dict(), pre=cfg.get('data_preprocessor'),
        train=cfg.train_dataloader.dataset.pipeline,
        test=cfg.test_dataloader.dataset.pipeline, files=stamp,
        classes=list(dataset.metainfo['classes']), views=args.views,
        seed=args.seed), sort_keys=True, default=str)
    return hashlib.sha256(text.encode('utf-8', 'surrogateescape')
                          ).hexdigest()[:16]


def _pool_features(model, dataset, seeds, batch_size):
    """Pooled features of every image; ``seeds`` None: the pipeline as is,
    else the augmentation seed ``(seed, view)`` of EpochSeededSampler."""
    import torch
    from mmengine.dataset import pseudo_collate
    from rock_plugin.datasets.samplers.epoch_seeded_sampler import \
        SeededIndex
    out = []
    for start in range(0, len(dataset), batch_size):
        idx = range(start, min(start + batch_size, len(dataset)))
        batch = pseudo_collate([dataset[SeededIndex(i, seeds) if seeds
                                        else i] for i in idx])
        with torch.no_grad():
            data = model.data_preprocessor(batch, False)
            out.append(model.extract_feat(data['inputs'])[0].float().cpu()
                       .numpy())
    return np.concatenate(out)


def check_study(test_set, args) -> list:
    """Fail before the extraction when the data cannot be cut as asked;
    return the classes each repeat leaves out."""
    from rock_plugin.datasets.leave_out import draw_left_out_classes
    from rock_plugin.utils.text import printable
    classes = test_set.metainfo['classes']
    counts = np.bincount([int(test_set.get_data_info(i)['gt_label'])
                          for i in range(len(test_set))],
                         minlength=len(classes))
    if counts.min() < args.folds:
        raise ValueError(
            f'class {printable(classes[counts.argmin()])!r} has '
            f'{counts.min()} images, fewer than --folds {args.folds}')
    with flag_hint({'leave_out_classes=': '--leave-out ',
                    'repeats=': '--repeats '}):
        return draw_left_out_classes(len(classes), args.leave_out,
                                     args.repeats, args.seed)


def load_features(cfg, args, test_set, train_set) -> dict:
    """The cached features of the data sets of :func:`_datasets`,
    extracted first if the cache is missing or stale
    (:func:`_fingerprint`)."""
    key = _fingerprint(cfg, test_set, args)
    path = osp.join(args.work_dir, f'features_{key}.npz')
    if osp.isfile(path):
        with np.load(path, allow_pickle=False) as saved:
            feats = {k: saved[k] for k in saved.files}
        print(f'features: cached {path}', flush=True)
        return dict(feats, cache=path, extract_s=0.)
    from rock_plugin.utils.atomic_io import atomic_write
    start = time.time()
    model = _study_model(cfg)
    model.to(args.device or 'cpu')
    bs = int(cfg.train_dataloader.get('batch_size') or 16)
    centre = _pool_features(model, test_set, None, bs)
    print(f'features: centre view of {len(test_set)} images, '
          f'{centre.shape[1]} values each ({time.time() - start:.0f} s)',
          flush=True)
    views = []
    for v in range(args.views):
        views.append(_pool_features(model, train_set, (args.seed, v), bs))
        print(f'features: training view {v + 1}/{args.views} '
              f'({time.time() - start:.0f} s)', flush=True)
    infos = [test_set.get_data_info(i) for i in range(len(test_set))]
    feats = dict(centre=centre, views=np.stack(views),
                 labels=np.array([int(i['gt_label']) for i in infos]),
                 paths=np.array([str(i['img_path']) for i in infos]),
                 classes=np.array([str(c) for c in
                                   test_set.metainfo['classes']]))
    with atomic_write(path, 'wb') as f:
        np.savez(f, **feats)
    return dict(feats, cache=path, extract_s=time.time() - start)


# -- 2. replayed head training ----------------------------------------------
def _replay_head(norm, in_dim, num_classes, train_feats):
    import torch
    import torch.nn.functional as F

    class ReplayHead(torch.nn.Module):
        """Normalisation, then mmpretrain's LinearClsHead init."""

        def __init__(self):
            super().__init__()
            if norm == 'bn':
                self.bn = torch.nn.BatchNorm1d(in_dim, affine=False)
            if norm == 'zscore':
                self.register_buffer('mean', torch.as_tensor(
                    train_feats.mean(0)))
                self.register_buffer('std', torch.as_tensor(
                    train_feats.std(0) + 1e-5))
            self.fc = torch.nn.Linear(in_dim, num_classes)
            torch.nn.init.normal_(self.fc.weight, 0, 0.01)
            torch.nn.init.zeros_(self.fc.bias)

        def forward(self, x):
            if norm.startswith('l2x'):
                x = F.normalize(x, dim=1) * float(norm[3:])
            elif norm == 'bn':
                x = self.bn(x)
            elif norm == 'zscore':
                x = (x - self.mean) / self.std
            return self.fc(x)

    return ReplayHead()


def train_head(cfg, views, labels, num_classes, norm, epochs, seed):
    """Train a head on cached ``views`` ``(V, N, D)`` as the config trains
    its head: optimizer, schedulers, loss, batch size; each epoch one view
    per image, in a shuffled order.

    Returns:
        tuple: The head (eval mode) and the mean loss of each epoch.
    """
    import torch
    from mmengine.registry import PARAM_SCHEDULERS
    from mmpretrain.registry import MODELS, OPTIMIZERS
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_views, n, dim = views.shape
    head = _replay_head(norm, dim, num_classes, views.reshape(-1, dim))
    optimizer = OPTIMIZERS.build(dict(cfg.optim_wrapper.optimizer,
                                      params=head.parameters()))
    schedulers = cfg.get('param_scheduler') or []
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
                  for s in (schedulers if isinstance(schedulers, list)
                            else [schedulers])]
    loss_fn = MODELS.build(cfg.model.head.get(
        'loss', dict(type='CrossEntropyLoss')))
    x, y = torch.as_tensor(views), torch.as_tensor(labels).long()
    bs = int(cfg.train_dataloader.get('batch_size') or 16)
    losses = []
    for _ in range(epochs):
        head.train()
        order, pick = rng.permutation(n), rng.integers(0, n_views, n)
        epoch_loss = []
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            if norm == 'bn' and len(idx) == 1:
                continue  # BatchNorm cannot train on one sample
            loss = loss_fn(head(x[pick[idx], idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss.append(loss.item())
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        losses.append(float(np.mean(epoch_loss)))
        for s in schedulers:
            if s.by_epoch:
                s.step()
    return head.eval(), losses


def logits_of(head, feats) -> np.ndarray:
    import torch
    with torch.no_grad():
        return head(torch.as_tensor(feats)).double().numpy()


def _stat(values) -> dict:
    values = [float(v) for v in values]
    return dict(mean=float(np.mean(values)), std=float(np.std(values)),
                runs=values)


def _folds(labels, args):
    from sklearn.model_selection import StratifiedKFold
    return list(StratifiedKFold(args.folds, shuffle=True,
                                random_state=args.seed).split(labels, labels))


def normalisation_study(cfg, feats, args, epochs) -> dict:
    """Part 2: one head per normalisation and fold."""
    from rock_plugin.evaluation.functional.calibration import (
        calibration_temperature, expected_calibration_error as ece,
        fit_temperature, softmax)
    centre, views, y = feats['centre'], feats['views'], feats['labels']
    num_classes = len(feats['classes'])
    folds = _folds(y, args)
    out = {}
    for norm in args.norms:
        rows, logits = [], []
        for f, (tr, va) in enumerate(folds):
            head, losses = train_head(cfg, views[:, tr], y[tr], num_classes,
                                      norm, epochs, args.seed + f)
            z = logits_of(head, centre[va])
            logits.append(z)
            rows.append(dict(
                loss_epoch1=losses[0], loss_last=losses[-1],
                max_abs_logit=np.abs(z).max(1).mean(),
                top1=100 * np.mean(z.argmax(1) == y[va]),
                ece=100 * ece(softmax(z), y[va])))
        for f, (_, va) in enumerate(folds):
            z, yv = logits[f], y[va]
            others = [g for g in range(len(folds)) if g != f]
            z_oof = np.concatenate([logits[g] for g in others])
            y_oof = np.concatenate([y[folds[g][1]] for g in others])
            for name, bounds in (('bounded', (1.0, 100.0)),
                                 ('free', FREE_T_BOUNDS)):
                t = fit_temperature(z, yv, bounds)
                t_oof = fit_temperature(z_oof, y_oof, bounds)
                rows[f].update({
                    f't_{name}': t,
                    f'ece_t_{name}': 100 * ece(softmax(z, t), yv),
                    f't_{name}_other_folds': t_oof,
                    f'ece_t_{name}_other_folds':
                        100 * ece(softmax(z, t_oof), yv)})
            # the hook's rule: the bounded T only where it lowers the
            # fold's own ECE; scored on this fold with the rule applied to
            # the other folds' logits (the honest figure)
            t_rule = calibration_temperature(z_oof, y_oof, (1.0, 100.0))
            rows[f]['ece_t_rule_other_folds'] = \
                100 * ece(softmax(z, t_rule), yv)
        out[norm] = {k: _stat([r[k] for r in rows]) for k in rows[0]}
        print(f'normalisation {norm}: done', flush=True)
    return out


# -- 3. novelty --------------------------------------------------------------
def _zscore_by_known(known, unknown):
    mean, std = known.mean(), known.std() + 1e-6  # as the hook
    return (known - mean) / std, (unknown - mean) / std


def _mahalanobis_lw(bank, bank_labels, queries) -> np.ndarray:
    """Distance to the nearest class mean under the class-centred features'
    shared covariance with Ledoit-Wolf shrinkage (sklearn)."""
    from scipy.linalg import cholesky, solve_triangular
    from sklearn.covariance import LedoitWolf
    bank = bank.astype(np.float64)
    classes = np.unique(bank_labels)
    means = np.stack([bank[bank_labels == c].mean(0) for c in classes])
    centred = bank - means[np.searchsorted(classes, bank_labels)]
    cov = LedoitWolf(assume_centered=True, store_precision=False).fit(
        centred).covariance_
    low = cholesky(cov, lower=True)
    # whiten once: |L^-1 (q - m)|^2 for every query and class mean
    wq = solve_triangular(low, queries.astype(np.float64).T, lower=True).T
    wm = solve_triangular(low, means.T, lower=True).T
    dist = (wq ** 2).sum(1)[:, None] - 2 * wq @ wm.T + (wm ** 2).sum(1)
    return dist.min(1)


def novelty_scores(cfg, feats, itr, ytr, num_known, queries, heads,
                   epochs, seed) -> dict:
    """Novelty scores (higher = more novel) of ``queries`` for one fold."""
    from scipy.special import logsumexp
    from rock_plugin.evaluation.functional.calibration import softmax
    scores = {}
    for norm in heads:
        head, _ = train_head(cfg, feats['views'][:, itr], ytr, num_known,
                             norm, epochs, seed)
        z = logits_of(head, queries)
        scores[f'max softmax [{norm}]'] = -softmax(z).max(1)
        scores[f'energy [{norm}]'] = -logsumexp(z, axis=1)
    bank = feats['centre'][itr]
    unit = bank / np.linalg.norm(bank, axis=1, keepdims=True).clip(1e-12)
    q_unit = queries / np.linalg.norm(queries, axis=1,
                                      keepdims=True).clip(1e-12)
    scores['kNN-1 cosine'] = 1 - (q_unit @ unit.T).max(1)
    scores['Mahalanobis LW'] = _mahalanobis_lw(bank, ytr, queries)
    return scores


def novelty_study(cfg, feats, args, epochs, head_norm, draws) -> dict:
    """Part 3: leave each of ``draws`` (lists of class indices) out; the
    head's scores use ``head_norm`` (the config's)."""
    from rock_plugin.evaluation.functional.calibration import (
        keep_known_threshold, open_set_report)
    from rock_plugin.utils.text import printable
    y, centre = feats['labels'], feats['centre']
    classes = [str(c) for c in feats['classes']]
    heads = list(dict.fromkeys([head_norm, 'raw']))
    fused = f'fused kNN-1 + energy [{head_norm}] (head)'
    runs = {}
    for r, unknown in enumerate(draws):
        known = np.setdiff1d(np.arange(len(classes)), unknown)
        kidx = np.flatnonzero(np.isin(y, known))
        uidx = np.flatnonzero(np.isin(y, unknown))
        yk = np.searchsorted(known, y[kidx])
        for f, (tr, va) in enumerate(_folds(yk, args)):
            queries = centre[np.r_[kidx[va], uidx]]
            scores = novelty_scores(cfg, feats, kidx[tr], yk[tr],
                                    len(known), queries, heads, epochs,
                                    args.seed + f)
            nv = len(va)
            parts = [_zscore_by_known(s[:nv], s[nv:]) for s in (
                scores['kNN-1 cosine'], scores[f'energy [{head_norm}]'])]
            scores[fused] = np.r_[parts[0][0] + parts[1][0],
                                  parts[0][1] + parts[1][1]]
            for name, s in scores.items():
                known_s, unknown_s = s[:nv], s[nv:]
                report = open_set_report(known_s, unknown_s,
                                         keep_known_threshold(
                                             known_s, args.keep_known))
                runs.setdefault(name, []).append(dict(report, repeat=r,
                                                      fold=f))
        print(f'novelty: repeat {r + 1}/{len(draws)} (left out: '
              f'{", ".join(printable(classes[c]) for c in unknown)})',
              flush=True)
    methods = {name: dict(
        auroc=_stat([x['auroc'] for x in rows]),
        unknown_flagged=_stat([x['unknown_flagged'] for x in rows]),
        known_flagged=_stat([x['known_flagged'] for x in rows]),
        auroc_per_repeat=[
            float(np.mean([x['auroc'] for x in rows if x['repeat'] == r]))
            for r in range(len(draws))])
        for name, rows in runs.items()}
    return dict(left_out=[[classes[c] for c in d] for d in draws],
                heads=heads, methods=methods)


# -- report ------------------------------------------------------------------
def _table(header, rows) -> str:
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def _pm(stat, fmt='.3f') -> str:
    return f'{stat["mean"]:{fmt}} ± {stat["std"]:{fmt}}'


def report(res) -> str:
    norms, nov = res['normalisation'], res['novelty']
    out = [f'## Normalisations ({res["folds"]} folds, {res["epochs"]} '
           'replayed epochs; mean ± std over folds; ECE in %)', '',
           _table(['features', 'epoch-1 loss', 'max abs logit', 'top-1 %',
                   'ECE', 'T ≥ 1', 'ECE, T ≥ 1', 'ECE, T ≥ 1 other folds',
                   'T free', 'ECE, T free', 'ECE, T free other folds',
                   'ECE, hook rule other folds'],
                  [[n, _pm(v['loss_epoch1'], '.2f'),
                    _pm(v['max_abs_logit'], '.1f'), _pm(v['top1'], '.1f'),
                    _pm(v['ece'], '.2f'), _pm(v['t_bounded'], '.2f'),
                    _pm(v['ece_t_bounded'], '.2f'),
                    _pm(v['ece_t_bounded_other_folds'], '.2f'),
                    _pm(v['t_free'], '.2f'), _pm(v['ece_t_free'], '.2f'),
                    _pm(v['ece_t_free_other_folds'], '.2f'),
                    _pm(v['ece_t_rule_other_folds'], '.2f')]
                   for n, v in norms.items()]), '',
           f'## Novelty ({res["leave_out"]} of {len(res["classes"])} '
           f'classes left out, {res["repeats"]} draws x {res["folds"]} '
           f'folds; mean ± std over runs)', '',
           _table(['score', 'AUROC', f'unknown flagged '
                   f'({res["keep_known"]:.0%} known kept)'],
                  [[name, _pm(m['auroc']), _pm(m['unknown_flagged'])]
                   for name, m in sorted(nov['methods'].items(),
                                         key=lambda kv:
                                         -kv[1]['auroc']['mean'])])]
    return '\n'.join(out)


def main(argv=None):
    args = parse_args(argv)
    setup_env(args)
    import rock_plugin  # noqa: F401  (registries)
    from _config_flags import load_config, set_data_options
    from rock_plugin.utils.atomic_io import atomic_write_json
    start = time.time()
    cfg = load_config(args.config, args.cfg_options)
    set_data_options(cfg, args.data_root)
    data_root = cfg.train_dataloader.dataset.get('data_root')
    for flag in ('--out', '--work-dir'):
        check_output_not_input(getattr(args, flag[2:].replace('-', '_')),
                               [data_root], flag)
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    test_set, train_set = _datasets(cfg)
    draws = check_study(test_set, args)
    feats = load_features(cfg, args, test_set, train_set)
    # the replay: tiny tensors, one thread each (torch and BLAS)
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)
    epochs = args.epochs or int(cfg.train_cfg.max_epochs)
    replay_start = time.time()
    with threadpool_limits(1):
        norms = normalisation_study(cfg, feats, args, epochs)
        novelty = novelty_study(cfg, feats, args, epochs, config_norm(cfg),
                                draws)
    res = dict(config=args.config, data_root=data_root,
               images=int(len(feats['labels'])),
               classes=[str(c) for c in feats['classes']],
               views=int(feats['views'].shape[0]),
               feature_dim=int(feats['centre'].shape[1]),
               feature_cache=feats['cache'],
               config_norm=config_norm(cfg), folds=args.folds,
               epochs=epochs, leave_out=args.leave_out,
               repeats=args.repeats, keep_known=args.keep_known,
               seed=args.seed, normalisation=norms, novelty=novelty,
               extract_s=round(feats['extract_s'], 1),
               replay_s=round(time.time() - replay_start, 1))
    res['wall_s'] = round(time.time() - start, 1)
    res['report'] = report(res)
    print(res['report'])
    print(f'\nwall time {res["wall_s"]:.0f} s (features '
          f'{res["extract_s"]:.0f} s, replay {res["replay_s"]:.0f} s); '
          f'results: {args.out}')
    atomic_write_json(args.out, res, indent=1)
    return res


if __name__ == '__main__':
    run(main)
