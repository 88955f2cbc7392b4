"""reidbox: a person re-identification toolbox built around Progressive Transfer Learning."""

import os

from setuptools import find_packages, setup

# The shipped yml configs (configs/ in the repository) install as package data under
# reidbox/configs, so a wheel install finds the chain's dataset fragments and the demo's configs
# (reidbox.config.loader.find_config). Each folder is listed as a data package: setuptools
# warns about importable-looking folders that are absent from `packages`.
CONFIG_PACKAGES = sorted("reidbox." + folder.replace(os.sep, ".")
                         for folder, _, _ in os.walk("configs"))

setup(
    name="reidbox",
    version="0.1.0",
    description="Person re-identification toolbox with Progressive Transfer Learning (PTL)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["reidbox", "reidbox.*"]) + CONFIG_PACKAGES,
    package_dir={"reidbox.configs": "configs"},
    package_data={name: ["*.yml"] for name in CONFIG_PACKAGES},
    install_requires=[
        # torchvision's compiled ops only load with the torch build they were compiled against.
        # PyPI's torchvision wheels pair with PyPI's torch builds; a stray local CPU-only torch
        # wheel (2.13.0+cpu on our machines) cannot run them, and these floors keep pip from
        # choosing it. requirements/constraints.txt pins the pair `make` installs and tests.
        "torch>=2.14",
        "torchvision>=0.29",
        "numpy",
        "yacs",
        "pyyaml",
        "opencv-python-headless",
        "pillow",
        "scipy",
        "h5py",
        "tqdm",
        "tensorboard",
        "matplotlib",
        # any timm CNN as a backbone (MODEL.BACKBONE.NAME timm:<model>); weights stay offline
        "timm>=1.0",
    ],
    # `reidbox <command>` runs every reidbox/commands/<name>.py (the tools' bodies).
    entry_points={"console_scripts": ["reidbox = reidbox.commands._console:main"]},
    # FAISS is a choice, not a default: faiss-cpu and faiss-gpu install the same `faiss` module,
    # so both in one environment overwrite each other's files, and pip cannot drop a default
    # requirement when an extra is chosen. Without FAISS, evaluation uses its exact torch
    # backend (same CMC/mAP, docs/evaluation.md); `reidbox[cpu]` or `reidbox[gpu]` adds one.
    extras_require={
        "cpu": ["faiss-cpu"],
        "gpu": ["faiss-gpu>=1.15"],
        "export": ["onnx", "onnxscript", "onnxruntime"],
        "dev": ["pytest", "ruff", "onnx", "onnxscript", "onnxruntime", "faiss-cpu"],
    },
)
