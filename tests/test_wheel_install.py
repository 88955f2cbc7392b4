"""A non-editable install (``pip install .``) into a fresh venv runs the demo and a chain from
another directory: the shipped configs and the chain's dataset fragments come with the wheel.

Offline: the wheel is built with this environment's setuptools (no build isolation) and
installed without dependencies; the fresh venv sees this environment's site-packages (torch,
yacs, ...) through a .pth file, after its own, so ``reidbox`` is the installed copy, never the
repository (which is on no path: no PYTHONPATH, and the commands run in an empty directory).
"""

import csv
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
import yaml

from tests.data.fixtures import make_cuhk03

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Top-level entries a source tree holds that a build never needs.
_NOT_SOURCE = {
    ".git",
    ".venv",
    "output",
    "datasets",
    "build",
    "dist",
    ".pytest_cache",
    ".ruff_cache",
    "tests",
    "benchmarks",
    "docs",
}

TINY = [
    "DEVICE",
    "cpu",
    "DATALOADER.NUM_WORKERS",
    "0",
    "SOLVER.MAX_EPOCHS",
    "1",
    "SOLVER.WARMUP_EPOCHS",
    "0",
    "SOLVER.IMS_PER_BATCH",
    "8",
    "DATALOADER.NUM_INSTANCES",
    "2",
    "INPUT.SIZE_TRAIN",
    "[32, 16]",
    "INPUT.SIZE_TEST",
    "[32, 16]",
    "INPUT.PADDING",
    "2",
    "TEST.IMS_PER_BATCH",
    "32",
    "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
    "2",
    "DATASETS.SYNTHETIC.NUM_TEST_IDS",
    "3",
    "DATASETS.SYNTHETIC.NUM_CAMERAS",
    "2",
    "DATASETS.SYNTHETIC.IMAGE_SIZE",
    "[32, 16]",
]


def _sh(cmd, cwd, env=None, timeout=300):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _ignore_top_level(folder, names):
    return [
        n
        for n in names
        if n == "__pycache__"
        or n.endswith(".egg-info")
        or (os.path.samefile(folder, REPO) and n in _NOT_SOURCE)
    ]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv holding reidbox from a wheel, an empty working directory)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: building in place would leave build/ in the repository
    shutil.copytree(REPO, src, ignore=_ignore_top_level)
    _sh(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        cwd=tmp,
    )
    (wheel,) = glob.glob(str(tmp / "dist" / "reidbox-*.whl"))
    venv = tmp / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = str(venv / "bin" / "python")
    site = _sh(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp
    ).strip()
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    with open(os.path.join(site, "_outer_env.pth"), "w") as f:  # torch, yacs, ... (not reidbox)
        f.write("\n".join(sorted(ours)) + "\n")
    _sh(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            wheel,
        ],
        cwd=tmp,
    )
    work = tmp / "elsewhere"
    work.mkdir()
    return python, work, str(venv)


def _env():
    # no PYTHONPATH (the repository), no REIDBOX_DATASETS (each command sets DATASETS.ROOT)
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHON") and k != "REIDBOX_DATASETS"
    }


@pytest.mark.slow
def test_installed_reidbox_is_the_wheel_with_its_configs(installed):
    python, work, venv = installed
    out = _sh(
        [
            python,
            "-c",
            "import reidbox; from reidbox.config.loader import "
            "packaged_config_dir as d; print(reidbox.__file__); print(d())",
        ],
        cwd=work,
        env=_env(),
    ).split()
    assert all(p.startswith(venv) for p in out), out  # not the repository
    assert os.path.isfile(os.path.join(out[1], "_base_", "cuhk03_detected.yml"))
    assert len(glob.glob(os.path.join(out[1], "**", "*.yml"), recursive=True)) == len(
        glob.glob(os.path.join(REPO, "configs", "**", "*.yml"), recursive=True)
    )


@pytest.mark.slow
def test_demo_runs_from_another_directory(installed):
    python, work, _ = installed
    _sh(
        [
            python,
            os.path.join(REPO, "tools", "demo.py"),
            "--output-dir",
            "demo",
            "--no-progress",
            *TINY,
            "DATASETS.ROOT",
            "data",
        ],
        cwd=work,
        env=_env(),
    )
    for name in ("metrics.json", "results.md", "config.yaml"):
        assert (work / "demo" / name).is_file(), name
    with open(work / "demo" / "config.yaml") as f:
        cfg = yaml.safe_load(f)
    # the main variant: the shipped configs/demo/baseline.yml with PTL's side network switched on
    assert cfg["MODEL"]["META_ARCHITECTURE"] == "baseline" and cfg["MODEL"]["PTL"]["ENABLED"]
    assert cfg["SOLVER"]["OPTIMIZER"] == "AdamW"


@pytest.mark.slow
def test_chain_uses_the_shipped_fragments_from_another_directory(installed):
    python, work, _ = installed
    make_cuhk03(str(work / "chain_data"))
    _sh(
        [
            python,
            os.path.join(REPO, "tools", "transfer_chain.py"),
            "synthetic_a",
            "CUHK03-detected",
            "--config-file",
            "configs/demo/chain.yml",
            "--no-progress",
            *TINY,
            "DATASETS.ROOT",
            "chain_data",
            "OUTPUT_DIR",
            "chain",
        ],
        cwd=work,
        env=_env(),
    )
    with open(work / "chain" / "02_cuhk03" / "config.yaml") as f:
        step2 = yaml.safe_load(f)
    assert step2["DATASETS"]["CUHK03"]["VARIANT"] == "detected"  # _base_/cuhk03_detected.yml
    assert step2["TEST"]["PROTOCOL"] == "openreid_market1501"  # its _BASE_ eval_openreid.yml
    with open(work / "chain" / "summary.csv", newline="") as f:
        assert [r["name"] for r in csv.DictReader(f)] == ["synthetic_a", "CUHK03-detected"]


@pytest.mark.slow
def test_installed_console_command(installed):
    """pip installs a ``reidbox`` command beside the venv's python (issue 22.3)."""
    python, work, venv = installed
    reidbox = os.path.join(venv, "bin", "reidbox")
    assert "\n  train " in _sh([reidbox, "--help"], cwd=work, env=_env())
    assert _sh([reidbox, "train", "--help"], cwd=work, env=_env()).startswith(
        "usage: reidbox train "
    )
    out = _sh(
        [reidbox, "stats", "synthetic", "--root", "stats_data", "--set", "num_train_ids=2"],
        cwd=work,
        env=_env(),
    )
    assert "| train" in out
