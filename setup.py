from setuptools import find_packages, setup

setup(
    name='gan-cocktail',
    version='0.1.0',
    description='Plugin for StyleGAN2-ADA-style codebases: merge, mine, transfer and condition pretrained GANs',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['plugin', 'plugin.*', 'torch_utils_ext', 'torch_utils_ext.*',
                                    'training_ext', 'training_ext.*']),
    py_modules=['train_cocktail'],
    package_data={'plugin': ['assets/sources/*.pkl', 'assets/runs/*/*.pkl', 'assets/feature_net.pt'],
                  'torch_utils_ext': ['ops/cuda/*.cu', 'ops/cuda/*.cpp', 'ops/cuda/emulation/*.h']},
    install_requires=['torch>=2.0', 'ninja', 'click', 'numpy', 'scipy', 'pillow'],
    extras_require={'test': ['pytest']},
    entry_points={'console_scripts': [
        'gan-cocktail = plugin.__main__:main',
        'train-cocktail = train_cocktail:main',
    ]},
)
