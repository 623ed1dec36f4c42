"""A plain (non-editable) install: a wheel built from the checkout and
installed into a fresh virtual environment runs ``rock-train
rock_quickstart`` and ``rock-predict`` from a folder outside the checkout,
with the tools, configs and demo data it ships in ``rock_plugin/.mim``.

The fresh environment sees this one's site-packages through a ``.pth`` file
(torch and the rest are not installed again), but not its editable
``rock_plugin``: that finder is a ``.pth`` hook of this environment, which
a plain path line does not run.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

from mmengine.config import Config

from conftest import REPO, make_class_folders, read_csv_dicts

SOURCES = ('setup.py', 'MANIFEST.in', 'README.md', 'LICENSE', 'requirements',
           'rock_plugin', 'tools', 'configs', 'demo')


def _run(cmd, cwd, timeout=300):
    # One thread: the CI cores are shared by parallel tests. No PYTHONPATH:
    # nothing of the checkout may leak into the fresh environment.
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f'{cmd} exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}'
        f'\nSTDERR:\n{proc.stderr[-3000:]}')
    return proc


def _build_wheel(tmp_path):
    """The wheel of a copy of the checkout (the checkout's own tree gets no
    build files), built offline with this environment's setuptools."""
    src = tmp_path / 'src'
    for name in SOURCES:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc', '.mim', '*.egg-info'))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(path, src / name)
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
          '--no-build-isolation', '--no-index', '-q', src, '-w',
          tmp_path / 'dist'], tmp_path)
    wheels = list((tmp_path / 'dist').glob('rock_plugin-*.whl'))
    assert len(wheels) == 1
    return wheels[0]


def _fresh_venv(tmp_path, wheel):
    """A new environment holding the wheel; then this one's packages."""
    venv = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', venv], tmp_path)
    python = venv / 'bin' / 'python'
    # This pip, run by the new interpreter: it sees the new environment
    # alone (no editable rock_plugin to replace or leave in place).
    _run([sys.executable, '-m', 'pip', '--python', python, 'install',
          '--no-deps', '--no-index', '-q', wheel], tmp_path)
    site = _run([python, '-c', 'import sysconfig; '
                 'print(sysconfig.get_paths()["purelib"])'],
                tmp_path).stdout.strip()
    ours = {sysconfig.get_paths()[k] for k in ('purelib', 'platlib')}
    with open(osp.join(site, '_rock_test_base_env.pth'), 'w') as f:
        f.write(''.join(p + '\n' for p in sorted(ours)))
    return venv, site


def test_wheel_runs_the_quickstart_and_predict_outside_the_checkout(
        tmp_path):
    wheel = _build_wheel(tmp_path)
    venv, site = _fresh_venv(tmp_path, wheel)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    python, bin_dir = venv / 'bin' / 'python', venv / 'bin'
    for name in ('train', 'test', 'predict', 'cv', 'cam', 'demo', 'export'):
        assert (bin_dir / f'rock-{name}').is_file()

    # The wheel's package, its tools and its bundled data: the shipped
    # quick start reads the demo images from the installed copy.
    probe = _run([python, '-c', (
        'import sys, os.path as osp, rock_plugin\n'
        'from rock_plugin.entry_points import tools_root\n'
        'print("=", rock_plugin.__file__); print("=", tools_root())\n'
        'sys.path.insert(0, osp.join(tools_root(), "tools"))\n'
        'from _common import shipped_config\n'
        'from _config_flags import load_config\n'
        'from mmengine.registry import init_default_scope\n'
        'from mmpretrain.registry import DATASETS\n'
        'cfg = load_config(shipped_config("rock_quickstart"))\n'
        'init_default_scope("mmpretrain")\n'
        'ds = DATASETS.build(cfg.train_dataloader.dataset)\n'
        'print("=", cfg.train_dataloader.dataset.data_root)\n'
        'print("=", len(ds), len(ds.metainfo["classes"]))\n')], elsewhere)
    package, root, data_root, sizes = [
        line[2:] for line in probe.stdout.splitlines() if line[:2] == '= ']
    mim = osp.join(site, 'rock_plugin', '.mim')
    assert package == osp.join(site, 'rock_plugin', '__init__.py')
    assert root == mim
    assert data_root == osp.join(mim, 'demo', 'rock_thin_sections')
    n_train, n_classes = map(int, sizes.split())
    assert n_classes == 11 and 150 < n_train < 233  # 80 % of 233

    data = make_class_folders(str(tmp_path / 'data'), per_class=4)
    _run([bin_dir / 'rock-train', 'rock_quickstart', '--data-root', data,
          '--work-dir', 'W', '--device', 'cpu', '--cfg-options',
          'train_cfg.max_epochs=1'], elsewhere)
    work = elsewhere / 'W'
    for name in ('last.pth', 'history.csv', 'rock_quickstart.py'):
        assert (work / name).is_file(), name
    saved = Config.fromfile(work / 'rock_quickstart.py')
    assert saved.model.backbone.type == 'EfficientNetLite'  # _base_ read
    assert saved.train_dataloader.dataset.data_root == data

    image = osp.join(data, 'beta', 'beta_0.jpg')
    _run([bin_dir / 'rock-predict', work / 'rock_quickstart.py',
          work / 'last.pth', image, '--out', 'pred.csv'], elsewhere)
    rows = read_csv_dicts(elsewhere / 'pred.csv')
    assert [r['file'] for r in rows] == [image]
    assert rows[0]['pred_class'] in ('alpha', 'beta', 'gamma')
    assert not osp.exists(osp.join(REPO, 'rock_plugin', '.mim'))
