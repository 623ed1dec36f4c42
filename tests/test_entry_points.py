"""The console scripts (rock_plugin/entry_points.py) and the shipped-config
names the tools accept (tools/_common.shipped_config), in the checkout.
tests/test_tools/test_wheel_install.py runs them from an installed wheel."""
import argparse
import os.path as osp
import re
import sys

import pytest

from conftest import QUICKSTART, REPO, load_tool
from rock_plugin import entry_points

B4 = osp.join(REPO, 'configs', 'rock_b4.py')
DEMO = osp.join(REPO, 'demo', 'rock_thin_sections')


@pytest.mark.parametrize('name, shipped', [
    ('rock_quickstart', QUICKSTART), ('rock_quickstart.py', QUICKSTART),
    ('configs/rock_b4.py', B4), ('./configs/rock_b4', B4)])
def test_a_shipped_config_is_found_by_name_from_any_folder(
        name, shipped, tmp_path, monkeypatch):
    common = load_tool('_common')
    monkeypatch.chdir(tmp_path)
    assert common.shipped_config(name) == shipped


def test_a_file_or_an_unknown_name_stays_as_typed(tmp_path, monkeypatch,
                                                  capsys):
    common = load_tool('_common')
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'rock_quickstart.py').write_text('x = 1\n')
    assert common.shipped_config('rock_quickstart.py') == 'rock_quickstart.py'
    for typed in ('rock_quickstrat', '../configs/rock_b4.py',
                  '/nowhere/rock_b4.py'):
        assert common.shipped_config(typed) == typed
    # ... so that the tool names the missing file, as before
    train_tool = load_tool('train')
    assert common.run_cli(train_tool.main, ['rock_quickstrat']) == 2
    assert 'error: rock_quickstrat: config file not found' in \
        capsys.readouterr().err


def test_the_tools_take_a_shipped_config_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_tool('train').parse_args(['rock_quickstart']).config == \
        QUICKSTART
    cv_args, _ = load_tool('cross_validate').parse_args(['rock_b4'])
    assert cv_args.config == B4
    # CONFIG CHECKPOINT of test, predict, vis_cam, export_onnx, web_demo
    parser = argparse.ArgumentParser()
    load_tool('_common').add_model_args(parser)
    assert parser.parse_args(['rock_b4', 'x.pth']).config == B4


def test_the_shipped_quickstart_finds_its_data_from_another_folder(
        tmp_path, monkeypatch):
    flags = load_tool('_config_flags')
    monkeypatch.chdir(tmp_path)
    cfg = flags.load_config(QUICKSTART)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.data_root == DEMO
    assert cfg.data_root == DEMO
    # from the checkout root the config is read as written
    monkeypatch.chdir(REPO)
    cfg = flags.load_config(QUICKSTART)
    assert cfg.train_dataloader.dataset.data_root == 'demo/rock_thin_sections'
    # a config of the user's keeps mmengine's rule (relative to the folder)
    own = tmp_path / 'own.py'
    own.write_text(f'_base_ = [{QUICKSTART!r}]\n')
    monkeypatch.chdir(tmp_path)
    cfg = flags.load_config(str(own))
    assert cfg.train_dataloader.dataset.data_root == 'demo/rock_thin_sections'


def test_every_console_script_runs_its_tool(monkeypatch):
    with open(osp.join(REPO, 'setup.py'), encoding='utf-8') as f:
        scripts = re.findall(
            r"'(rock-[\w-]+)=rock_plugin\.entry_points:(\w+)'", f.read())
    assert len(scripts) == 7
    assert entry_points.tools_root() == REPO  # the checkout, no .mim
    ran = []
    monkeypatch.setattr(entry_points, 'run_tool', ran.append)
    for _, func in scripts:
        getattr(entry_points, func)()
    assert [osp.isfile(osp.join(REPO, 'tools', t)) for t in ran] == \
        [True] * 7
    assert ran == ['train.py', 'test.py', 'predict.py', 'cross_validate.py',
                   'vis_cam.py', 'web_demo.py', 'export_onnx.py']


def test_a_console_script_passes_its_arguments(tmp_path, monkeypatch,
                                               capsys):
    # rock-train --help, as the installed script calls it, from elsewhere
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', list(sys.path))
    monkeypatch.setattr(sys, 'argv', ['rock-train', '--help'])
    with pytest.raises(SystemExit) as exit_:
        entry_points.train()
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert '--data-root' in out and 'rock_quickstart' in out
    assert out.startswith('usage: rock-train ')  # not train.py
    assert sys.path[0] == osp.join(REPO, 'tools')  # as for a script
