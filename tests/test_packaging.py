"""setup.py: FAISS comes from exactly one of the cpu/gpu extras, never both."""

import os
import runpy
import shutil
import subprocess

import pytest
import setuptools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_kwargs(monkeypatch):
    seen = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: seen.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(os.path.join(ROOT, "setup.py"))
    return seen


def _names(reqs):
    return {r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip() for r in reqs}


def test_faiss_cpu_and_gpu_wheels_never_installed_together(monkeypatch):
    kw = _setup_kwargs(monkeypatch)
    extras = kw["extras_require"]
    assert not _names(kw["install_requires"]) & {"faiss-cpu", "faiss-gpu"}
    assert "faiss-cpu" in _names(extras["cpu"]) and "faiss-gpu" not in _names(extras["cpu"])
    assert "faiss-gpu" in _names(extras["gpu"]) and "faiss-cpu" not in _names(extras["gpu"])
    for name, reqs in extras.items():  # no extra brings both
        assert not {"faiss-cpu", "faiss-gpu"} <= _names(reqs), name
    assert "faiss-cpu" in _names(extras["dev"])  # make setup / CI test the FAISS backend


def test_every_shipped_config_is_package_data(monkeypatch):
    """A wheel carries configs/ as reidbox/configs (the chain's fragments, the demo's configs);
    tests/test_wheel_install.py checks a real install."""
    kw = _setup_kwargs(monkeypatch)
    assert kw["package_dir"] == {"reidbox.configs": "configs"}
    for folder, _, files in os.walk(os.path.join(ROOT, "configs")):
        package = "reidbox." + os.path.relpath(folder, ROOT).replace(os.sep, ".")
        if any(f.endswith(".yml") for f in files):
            assert package in kw["packages"] and "*.yml" in kw["package_data"][package], folder


def _pins(path):
    pins = {}
    for line in open(os.path.join(ROOT, path), encoding="utf-8"):
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def test_cpu_constraints_pin_the_same_pair_as_cpu_builds():
    default, cpu = _pins("requirements/constraints.txt"), _pins("requirements/constraints-cpu.txt")
    assert set(default) == set(cpu)
    for name in ("torch", "torchvision"):  # both from PyTorch's CPU index, never one of them
        assert cpu[name] == default[name].split("+")[0] + "+cpu", name
    assert {k: v for k, v in cpu.items() if "+" not in v} == {
        k: v for k, v in default.items() if k not in ("torch", "torchvision")
    }


def _make_n(tmp_path, *args):
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    # run from `make test` (as CI does), make's own MAKELEVEL/MAKEFLAGS would make the inner
    # make print "Entering directory" lines around the recipe: a fresh make, as a user's
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(
        ["make", "-n", "setup", f"VENV={tmp_path / 'venv'}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )


def test_make_setup_chooses_the_torch_build(tmp_path):
    """``make setup TORCH=cpu`` installs the CPU-only pair from PyTorch's index; the default
    stays PyPI's build (what GPU machines need). Checked at the level of the commands make
    would run (``make -n``): the tests download nothing."""
    cpu = _make_n(tmp_path, "TORCH=cpu")
    assert cpu.returncode == 0, cpu.stderr
    (pip,) = [ln for ln in cpu.stdout.splitlines() if " -e " in ln]
    assert "--index-url https://download.pytorch.org/whl/cpu" in pip
    assert "--extra-index-url https://pypi.org/simple" in pip  # everything else from PyPI
    assert "-c requirements/constraints-cpu.txt" in pip
    assert cpu.stdout.rstrip().endswith(f"echo cpu > {tmp_path / 'venv'}/.installed")
    default = _make_n(tmp_path)
    (pip,) = [ln for ln in default.stdout.splitlines() if " -e " in ln]
    assert "index-url" not in pip and "-c requirements/constraints.txt" in pip
    bad = _make_n(tmp_path, "TORCH=rocm")
    assert bad.returncode != 0 and "TORCH must be cuda or cpu" in bad.stderr
    # a venv holding the other build is redone; the same build is left alone
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / ".installed").write_text("cpu\n")
    assert " -e " not in _make_n(tmp_path, "TORCH=cpu").stdout
    assert " -e " in _make_n(tmp_path, "TORCH=cuda").stdout
