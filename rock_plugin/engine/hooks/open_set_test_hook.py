"""``OpenSetTestHook``: a test run's open-set report (``tools/test.py
--unknown DIR``) and feature map (``--embedding``)."""
import importlib.util
import os
import os.path as osp
from typing import List, Optional

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation.functional.embedding import (adapted_perplexity,
                                                         embed_2d)
from rock_plugin.evaluation.metrics import PredictionCollector
from rock_plugin.utils.errors import DataError
from rock_plugin.utils.image_files import IMG_EXTENSIONS, list_images
from rock_plugin.utils.model_wrappers import bare_model
from rock_plugin.visualization.embedding import plot_embedding

from ..test_result_files import save_open_set_results

METHOD_NAMES = dict(tsne='t-SNE', umap='UMAP')


@HOOKS.register_module()
class OpenSetTestHook(Hook):
    """After the test epoch (rank 0), into ``results_dir``:

    - ``unknown_dir``: its images (recursively; rocks of no trained class)
      through the test pipeline and the model under test; the AUROC of the
      novelty score (unknown against the test images,
      :func:`open_set_report`), the shares flagged at the head's threshold
      in force, the test accuracy: ``open_set.json``,
      ``novelty_scores.csv`` and report lines. The model needs an
      ``OpenSetLinearClsHead`` with a feature bank (checked before the test
      epoch).
    - ``embedding``: a 2-D map of the pooled features of the test images
      (coloured by class) and of the unknown images (black crosses):
      ``embedding.png``. The head needs ``keep_features=True``.

    Args:
        unknown_dir (str, optional): Folder of images of no trained class.
        embedding (str, optional): ``'tsne'`` or ``'umap'`` (needs
            ``umap-learn``). Defaults to None (no map).
        results_dir (str, optional): Defaults to ``<work_dir>/test_results``.

    Example:
        >>> custom_hooks = [dict(type='TestResultsHook'),
        ...                 dict(type='OpenSetTestHook', unknown_dir='other',
        ...                      embedding='tsne')]
    """
    priority = 'LOW'

    def __init__(self, unknown_dir: Optional[str] = None,
                 embedding: Optional[str] = None,
                 results_dir: Optional[str] = None):
        if embedding not in (None, *METHOD_NAMES):
            raise ValueError(f'embedding={embedding!r}: use one of '
                             f'{tuple(METHOD_NAMES)}')
        if embedding == 'umap' and not importlib.util.find_spec('umap'):
            raise ImportError('the UMAP embedding needs umap-learn (pip '
                              'install umap-learn), or use t-SNE')
        self.unknown_dir, self.embedding = unknown_dir, embedding
        self.results_dir = results_dir
        self.unknown_files: List[str] = []
        if unknown_dir is not None:
            self.unknown_files = list_images(unknown_dir)
            if not self.unknown_files:
                raise DataError('no images in this folder or below it ('
                                f'{" ".join(IMG_EXTENSIONS)})', unknown_dir)
        #: What ``TestResultsHook`` adds to its report (rank 0).
        self.report_lines: List[str] = []
        #: Rank 0, after the test epoch: ``open_set`` (the JSON) and
        #: ``files``.
        self.results = {}

    def before_test(self, runner) -> None:
        head = getattr(bare_model(runner.model), 'head', None)
        if self.unknown_dir is not None and \
                not getattr(head, 'has_bank', False):
            raise ValueError(
                f'{runner.cfg.load_from}: the model has no feature bank, so '
                'no novelty score for --unknown (its head is '
                f'{type(head).__name__}); train with an '
                'OpenSetLinearClsHead and OpenSetCalibrationHook, as the '
                'shipped configs do')
        if self.embedding and not getattr(head, 'keep_features', False):
            raise ValueError(
                f'{runner.cfg.load_from}: --embedding needs the pooled '
                f'features, which its head ({type(head).__name__}) does not '
                'keep (OpenSetLinearClsHead with keep_features=True)')

    def after_test_epoch(self, runner, metrics: Optional[dict] = None):
        self.report_lines, self.results = [], {}
        if not is_main_process():
            return
        predictions, classes = PredictionCollector.predictions_of(
            runner.test_evaluator)
        results_dir = self.results_dir or osp.join(runner.work_dir,
                                                   'test_results')
        os.makedirs(results_dir, exist_ok=True)
        model = bare_model(runner.model)
        unknown = self._predict(runner, model) if self.unknown_files else []
        files = {}
        if self.unknown_files:
            self.results['open_set'], written, self.report_lines = \
                save_open_set_results(results_dir, model.head, predictions,
                                      classes, self.unknown_dir,
                                      self.unknown_files, unknown)
            files.update(written)
        if self.embedding:
            files['embedding'] = self._embedding(
                runner, predictions, classes, unknown, results_dir)
        self.results['files'] = files

    def _predict(self, runner, model) -> list:
        """The model's data samples of the unknown images."""
        pipeline = runner.test_dataloader.dataset.pipeline
        loader = torch.utils.data.DataLoader(
            [dict(img_path=f, sample_idx=i)
             for i, f in enumerate(self.unknown_files)],
            batch_size=getattr(runner.test_dataloader, 'batch_size', 8) or 8,
            collate_fn=lambda items: pseudo_collate(
                [pipeline(dict(item)) for item in items]))
        model.eval()
        with torch.no_grad():
            return [s for batch in loader for s in model.test_step(batch)]

    def _embedding(self, runner, predictions, classes, unknown,
                   results_dir) -> str:
        known = PredictionCollector.features_of(runner.test_evaluator)
        if known is None:
            raise ValueError('--embedding: the test predictions hold no '
                             'features (keep_features=True on the head)')
        feats = [known] + ([np.stack([s.feature.cpu().numpy()
                                      for s in unknown])] if unknown else [])
        points = embed_2d(np.concatenate(feats), self.embedding)
        name = METHOD_NAMES[self.embedding]
        title = f'{name} of the pooled features: {len(known)} test images' + \
            (f', {len(unknown)} unknown' if unknown else '')
        path = plot_embedding(
            points[:len(known)], [p['gt_label'] for p in predictions],
            classes, osp.join(results_dir, 'embedding.png'),
            unknown_points=points[len(known):], title=title)
        how = f'perplexity {adapted_perplexity(len(points)):.1f}' \
            if self.embedding == 'tsne' else 'umap-learn'
        self.report_lines.append(f'embedding ({name}, {how}): '
                                 f'{osp.basename(path)}')
        return path
