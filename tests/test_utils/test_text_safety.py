"""Class and file names from users' folders and model files cannot run as
spreadsheet formulas in our CSV files, nor drive the terminal (issue 20)."""
import io
import os
import os.path as osp
import re

import numpy as np
import pytest

from conftest import (QUICKSTART, TINY_CONFIG, make_class_folders,
                      read_csv_dicts, read_csv_rows, run_tool)

OSC = '\x1b]0;pwned\x07'  # retitles an xterm
NAMES = ('=HYPERLINK("x")', '+cmd', '@SUM(1)', '-bad', f'chert{OSC}')
SHOWN = 'chert\\x1b]0;pwned\\x07'  # how the terminal must show the last one
# Excel and LibreOffice run a cell starting with these as a formula...
FORMULA_START = ('=', '+', '-', '@', '\t', '\r')
# ... but a plain number ('-0.5', '1e-05', '-inf') is only a number.
NUMBER = re.compile(r'[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)')
FIVE = ('model.head.num_classes=5', 'data_preprocessor.num_classes=5')


def _live_formulas(path):
    """The cells of a CSV file that a spreadsheet would run."""
    return [(i, cell) for i, row in enumerate(read_csv_rows(path))
            for cell in row
            if cell.startswith(FORMULA_START) and not NUMBER.fullmatch(cell)]


# ---------------------------------------------------------------- units --

def test_printable_escapes_control_characters_only():
    from rock_plugin.utils.text import printable
    assert printable(f'chert{OSC}') == SHOWN
    assert printable('a\x9b2J\x7f\u202eb\r') == \
        'a\\x9b2J\\x7f\\u202eb\\x0d'  # C1 CSI, DEL, bidi override, CR
    assert printable('line 1\n\tline 2') == 'line 1\n\tline 2'
    assert printable('a\tb\nc', one_line=True) == 'a\\x09b\\x0ac'
    assert printable('Granite, Gneiß 石') == 'Granite, Gneiß 石'
    assert printable(3) == '3'


@pytest.mark.parametrize('value', NAMES + (
    "'=quoted", "''@twice", "'plain", "'", '', 'Chert', '-', '=', '\tx',
    '\rx', "'-0.5", "a=b"))
def test_csv_cell_neutralises_and_from_csv_cell_undoes(value):
    from rock_plugin.utils.text import csv_cell, from_csv_cell
    cell = csv_cell(value)
    assert not (cell.startswith(FORMULA_START) and
                not NUMBER.fullmatch(cell))
    assert from_csv_cell(cell) == value
    if value.startswith(FORMULA_START):
        assert cell == "'" + value


@pytest.mark.parametrize('value', ['-0.5', '+1', '-1e-05', '1.5E+3', '-.5',
                                   '-inf', 'nan', '-3', 0.5, -2, None, True])
def test_plain_numbers_stay_numbers(value):
    from rock_plugin.utils.text import csv_cell, from_csv_cell
    assert csv_cell(value) is value
    assert from_csv_cell(value) is value


def test_atomic_write_csv_is_the_one_writer_and_round_trips(tmp_path):
    from rock_plugin.utils.atomic_io import atomic_write_csv
    from rock_plugin.utils.text import from_csv_cell
    rows = [['class', 'score', 'loss'], *[[n, 0.25, -0.5] for n in NAMES]]
    path = atomic_write_csv(str(tmp_path / 'x.csv'), rows)
    assert _live_formulas(path) == []
    back = read_csv_rows(path)
    assert [from_csv_cell(r[0]) for r in back[1:]] == list(NAMES)
    assert [r[2] for r in back[1:]] == ['-0.5'] * len(NAMES)  # a number


def test_history_and_folds_read_back_the_real_names(tmp_path):
    from rock_plugin.datasets.kfold import read_folds_csv, write_fold_files
    from rock_plugin.utils.atomic_io import atomic_write_csv
    from rock_plugin.visualization import read_history
    path = atomic_write_csv(str(tmp_path / 'history.csv'), [
        ['epoch', 'lr', '=odd', 'f1-score/-bad'], [1, 0.1, -0.5, 50.0]])
    assert read_history(path) == [{'epoch': '1', 'lr': '0.1', '=odd': '-0.5',
                                   'f1-score/-bad': '50.0'}]
    paths = [str(tmp_path / f'{i}.jpg') for i in range(4)]
    write_fold_files(str(tmp_path), paths, [0, 1, 0, 1], [0, 0, 1, 1],
                     ['=HYPERLINK("x")', '-bad'],
                     groups=['@g1', '+g2', '@g1', "'=g3"])
    assert _live_formulas(str(tmp_path / 'folds.csv')) == []
    rows = read_folds_csv(str(tmp_path / 'folds.csv'))
    assert [(r['class'], r['group'], r['label'], r['fold']) for r in rows] \
        == [('=HYPERLINK("x")', '@g1', 0, 0), ('-bad', '+g2', 1, 0),
            ('=HYPERLINK("x")', '@g1', 0, 1), ('-bad', "'=g3", 1, 1)]


def test_log_filter_escapes_messages_once_and_keeps_the_level():
    from mmengine.logging import MMLogger

    from rock_plugin.utils.text import PrintableFilter, escape_log_records
    logger = MMLogger.get_instance('rock_text_safety', log_level='INFO')
    stream = io.StringIO()
    logger.handlers[0].setStream(stream)
    escape_log_records(escape_log_records(logger))
    assert sum(isinstance(f, PrintableFilter) for f in logger.filters) == 1
    logger.warning('precision/%s: %.1f', NAMES[-1], 50.0)
    logger.info('Per-class results\n  %s\t1', NAMES[-1])
    out = stream.getvalue()
    assert OSC not in out and '\x07' not in out
    assert 'WARNING' in out and f'precision/{SHOWN}: 50.0' in out
    assert f'Per-class results\n  {SHOWN}\t1' in out  # layout kept


def test_tables_and_drawings_show_names_inert(tmp_path):
    from rock_plugin.evaluation.metrics.class_report import (
        compute_rock_metrics, format_per_class_table)
    from rock_plugin.visualization import plot_confusion_matrix
    from rock_plugin.visualization.annotate import text_band
    names = ['[/x]', '$\\foo$', f'chert{OSC}\nrow']
    metrics = compute_rock_metrics(np.eye(3), np.arange(3), 3)
    table = format_per_class_table(metrics, names)  # rich markup: inert
    assert '[/x]' in table and f'{SHOWN}\\x0arow' in table
    assert OSC not in table
    # an image shows the escaped text, not what OpenCV makes of ESC/BEL
    assert np.array_equal(text_band([f'pred: chert{OSC}'], 200),
                          text_band([f'pred: {SHOWN}'], 200))
    # mathtext would fail on '$\foo$'; drawn literally instead
    out = plot_confusion_matrix(np.eye(3, dtype=int), names,
                                str(tmp_path / 'cm.png'))
    assert osp.getsize(out) > 0


# ----------------------------------------------- the tools, as a user --

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Train (1 epoch, resumed to 2), test, predict, plot and cross-validate
    on class folders named like formulas and with a terminal escape."""
    base = tmp_path_factory.mktemp('text_safety')
    data = make_class_folders(str(base / 'data'), classes=NAMES, per_class=4)
    work, test_work = str(base / 'train'), str(base / 'test')
    cv_work, pred_out = str(base / 'cv'), str(base / 'predict' / 'x.csv')
    # run_tool forks each of the 8 from this worker's tool server: 5 s of
    # imports saved on each.
    # The shipped quick start (workers, 260 px); cross-validation: tiny.
    train = ('tools/train.py', QUICKSTART, '--device', 'cpu', '--seed',
             '1', '--data-root', data, '--work-dir', work)
    # FORCE_COLOR: mmengine colours level names as on a terminal
    color = dict(FORCE_COLOR='1')
    procs = dict(train=run_tool(*train, '--cfg-options',
                                'train_cfg.max_epochs=1', *FIVE, env=color))
    procs['resume'] = run_tool(*train, '--resume', '--cfg-options',
                               'train_cfg.max_epochs=2', *FIVE, env=color)
    ckpt = osp.join(work, 'epoch_2.pth')
    procs['test'] = run_tool('tools/test.py', QUICKSTART, ckpt, '--device',
                             'cpu', '--data-root', data, '--work-dir',
                             test_work, '--show-dir',
                             osp.join(test_work, 'shown'), '--cfg-options',
                             *FIVE)
    procs['predict'] = run_tool('tools/predict.py',
                                osp.join(work, 'rock_quickstart.py'), ckpt,
                                data, '--out', pred_out)
    procs['plot'] = run_tool('tools/analysis/plot_history.py', work)
    cv = ('tools/cross_validate.py', TINY_CONFIG, '--folds', '2',
          '--seed', '3', '--device', 'cpu', '--data-root', data,
          '--work-dir', cv_work, '--cfg-options',
          'train_cfg.max_epochs=1', *FIVE)
    procs['cv'] = run_tool(*cv)
    procs['cv_rerun'] = run_tool(*cv)  # reads folds.csv back, skips folds
    return dict(procs=procs, work=work, test_work=test_work,
                cv_work=cv_work, pred_out=pred_out,
                dirs=[work, test_work, cv_work, osp.dirname(pred_out)])


def test_no_csv_the_tools_write_holds_a_live_formula(runs):
    found = [osp.join(root, f) for d in runs['dirs']
             for root, _, files in os.walk(d) for f in files
             if f.endswith('.csv')]
    names = {osp.basename(p) for p in found}
    expected = {'history.csv', 'confusion_matrix.csv', 'per_class.csv',
                'prediction_results.csv', 'roc_pr_summary.csv',
                'roc_curves.csv', 'pr_curves.csv', 'x.csv', 'folds.csv',
                'cv_summary.csv', 'oof_predictions.csv',
                'oof_confusion_matrix.csv'}
    assert expected <= names, expected - names
    for path in found:
        assert _live_formulas(path) == [], path
    # the names are there, neutralised: not dropped or mangled
    from rock_plugin.utils.text import from_csv_cell
    per_class = read_csv_dicts(osp.join(runs['test_work'], 'test_results',
                                        'per_class.csv'))
    assert [from_csv_cell(r['class']) for r in per_class][:5] == \
        sorted(NAMES)
    assert per_class[0]['class'] == "'+cmd"
    preds = read_csv_dicts(runs['pred_out'])
    assert {from_csv_cell(r['pred_class']) for r in preds} <= set(NAMES)
    assert [f'score/{n}' for n in sorted(NAMES)] == \
        list(preds[0])[-5:]  # 'score/...' headers start with a letter


def test_no_terminal_escape_reaches_the_output(runs):
    for name, proc in runs['procs'].items():
        out = proc.stdout + proc.stderr
        assert OSC not in out and '\x07' not in out and '\x1b]' not in out, \
            name
    train = runs['procs']['train'].stdout
    assert SHOWN in train  # the per-class table names the class, escaped
    assert '\x1b[' in train  # mmengine's level colours still work
    assert SHOWN in runs['procs']['test'].stdout
    assert SHOWN in runs['procs']['predict'].stdout
    assert len(os.listdir(osp.join(runs['test_work'], 'shown'))) == 5


def test_resumed_history_keeps_the_real_class_names(runs):
    from rock_plugin.visualization import read_history
    rows = read_history(runs['work'])
    assert [r['epoch'] for r in rows] == ['1', '2']
    for row in rows:  # epoch 1 was read back and rewritten by the resume
        for name in NAMES:
            assert row[f'precision/{name}'] != '', name
    assert osp.isfile(osp.join(runs['work'], 'curves.png'))
