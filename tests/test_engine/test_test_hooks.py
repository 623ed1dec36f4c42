"""The components a test run writes with (``TestResultsHook``,
``DumpResultsHook``, ``PredictionVisualizationHook``), the flags that add
them (``tools/test.py``'s ``merge_args``) and ``evaluate()`` without them.
tools/test.py end to end: tests/test_tools/test_test_tool.py and
test_test_curves.py."""
import os
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from conftest import (TINY_CONFIG, file_magic, load_tool,
                      make_class_folders, read_csv_rows, read_json)

CLASSES = ('a', 'b')


class _Runner:
    """What the test hooks read of mmengine's ``Runner``."""

    def __init__(self, root, collector, hooks):
        self.cfg = Config(dict(
            load_from=osp.join(root, 'epoch_3.pth'), model=dict(type='M'),
            test_dataloader=dict(dataset=dict(data_root=root, split=None))))
        self.work_dir = osp.join(root, 'work')
        self.test_evaluator = SimpleNamespace(metrics=[collector])
        self.test_dataloader = SimpleNamespace(
            dataset=SimpleNamespace(metainfo=dict(classes=CLASSES)))
        self.hooks = hooks

    def test(self, metrics):
        """The hook calls of mmengine's ``TestLoop.run``."""
        for hook in self.hooks:
            hook.before_test_epoch(self)
            hook.after_load_checkpoint(self, dict(meta=dict(epoch=3)))
        for stage, kwargs in (('after_test_epoch', dict(metrics=metrics)),
                              ('after_test', {})):
            for hook in self.hooks:
                getattr(hook, stage)(self, **kwargs)


@pytest.fixture
def predictions(tmp_path):
    """Four predictions on images of classes a and b, two of them wrong."""
    root = make_class_folders(str(tmp_path / 'data'), classes=CLASSES,
                              per_class=2)
    paths = [osp.join(root, c, f'{c}_{i}.jpg') for c in CLASSES
             for i in range(2)]
    scores = [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]]
    return [dict(img_path=p, gt_label=i // 2, pred_label=int(s[1] > s[0]),
                 pred_score=s) for i, (p, s) in enumerate(zip(paths, scores))]


def test_the_hooks_write_their_files_and_one_report(tmp_path, predictions,
                                                    monkeypatch):
    import rock_plugin  # noqa: F401
    from rock_plugin.engine.hooks import (DumpResultsHook,
                                          PredictionVisualizationHook,
                                          TestResultsHook)
    from rock_plugin.engine.hooks import test_results_hook
    from rock_plugin.evaluation import PredictionCollector
    logged = []
    monkeypatch.setattr(test_results_hook, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    collector = PredictionCollector()
    collector.dataset_meta = dict(classes=CLASSES)
    collector.predictions = predictions
    out, show = str(tmp_path / 'preds.json'), str(tmp_path / 'show')
    hooks = [TestResultsHook(config='configs/x.py', mistakes=4),
             DumpResultsHook(out), PredictionVisualizationHook(
                 show, wrong_only=True)]
    _Runner(str(tmp_path), collector, hooks).test(
        {'accuracy/top1': 50.0, 'note': 'not a number'})

    results = osp.join(str(tmp_path), 'work', 'test_results')
    summary = read_json(osp.join(results, 'summary.json'))
    assert summary['metrics'] == {'accuracy/top1': 50.0}
    assert summary['checkpoint_epoch'] == 3 and summary['tta'] is False
    assert summary['config'] == osp.abspath('configs/x.py')
    assert summary['classes'] == list(CLASSES) and summary['split'] is None
    assert 'roc_auc' in summary
    # no ClassReportMetric in the evaluator: the report is computed
    rows = read_csv_rows(osp.join(results, 'per_class.csv'))
    assert rows[-2] == ['accuracy/top1', '', '', '50.0000', '4']
    assert file_magic(osp.join(results, 'mistakes.jpg'), 3) == b'\xff\xd8\xff'
    assert [d['pred_class'] for d in read_json(out)] == ['a', 'b', 'b', 'a']
    assert sorted(os.listdir(show)) == ['00001_a_1.jpg', '00003_b_1.jpg']
    assert hooks[0].results['files']['summary'].endswith('summary.json')

    assert len(logged) == 1  # one record, as before the hooks
    lines = logged[0].splitlines()
    assert 'Per-class results' in logged[0]
    assert f'4 test images; results in {results}:' in lines
    assert '  prediction_results.csv' in lines
    assert lines[-2:] == [f'--out (pred): {out}',
                          f'2 annotated images in {show}']


def test_the_hooks_need_a_prediction_collector(tmp_path):
    import rock_plugin  # noqa: F401
    from rock_plugin.engine.hooks import TestResultsHook
    from rock_plugin.evaluation import ClassReportMetric
    runner = _Runner(str(tmp_path), ClassReportMetric(), [TestResultsHook()])
    with pytest.raises(ValueError, match="'PredictionCollector'"):
        runner.test({})


def test_out_and_interval_are_checked():
    import rock_plugin  # noqa: F401
    from rock_plugin.engine.hooks import (DumpResultsHook,
                                          PredictionVisualizationHook)
    with pytest.raises(ValueError, match='use a .json file'):
        DumpResultsHook('preds.pkl')
    with pytest.raises(ValueError, match='--out-item'):
        DumpResultsHook('preds.json', out_item='loss')
    with pytest.raises(ValueError, match='at least 1'):
        PredictionVisualizationHook('show', interval=0)


def test_merge_args_adds_the_test_outputs_once(tmp_path):
    """The flags become config; a config saved by a test run (which names
    the hooks already) gets them replaced, not twice."""
    test_tool = load_tool('test')
    args = test_tool.parse_args([
        TINY_CONFIG, __file__, '--work-dir', str(tmp_path),
        '--out', 'x.json', '--show-dir', 'show', '--interval', '2',
        '--mistakes', '3', '--seed', '1'])
    cfg = Config(dict(
        test_dataloader=dict(dataset=dict(type='RockDataset')),
        test_evaluator=dict(type='RockMetric', topk=(1, 5)),
        custom_hooks=[dict(type='HistoryHook'),
                      dict(type='TestResultsHook', mistakes=8),
                      dict(type='mmpretrain.DumpResultsHook', out_file='y')]),
        cfg_text='# a saved test config', filename='configs/x.py')
    cfg = test_tool.merge_args(cfg, args, {})
    assert cfg.test_evaluator == [
        dict(type='RockMetric', topk=(1, 5), log_table=False),
        dict(type='PredictionCollector')]
    assert cfg.custom_hooks == [
        dict(type='HistoryHook'),
        dict(type='TestResultsHook', config='configs/x.py', mistakes=3,
             results_dir=osp.join(str(tmp_path), 'test_results')),
        dict(type='DumpResultsHook', out_file='x.json', out_item='pred'),
        dict(type='PredictionVisualizationHook', out_dir='show',
             interval=2, wrong_only=False)]


def test_evaluate_without_the_test_hooks_only_tests(quickstart_model,
                                                    tmp_path):
    """The Python API writes what the config names: here nothing beyond
    mmengine's log; the checkpoint is still checked."""
    import rock_plugin  # noqa: F401
    from rock_plugin.apis.evaluate import evaluate
    from rock_plugin.utils.errors import CheckpointError
    cfg = Config.fromfile(quickstart_model['config'])
    cfg.work_dir = str(tmp_path / 'work')
    cfg.test_dataloader.num_workers = 0
    result = evaluate(cfg, quickstart_model['checkpoint'])
    assert list(result) == ['metrics']
    assert result['metrics']['accuracy/top1'] > 50
    assert not osp.exists(osp.join(cfg.work_dir, 'test_results'))
    cfg.model.head.num_classes = 3
    with pytest.raises(CheckpointError, match='does not fit'):
        evaluate(cfg, quickstart_model['checkpoint'])
