"""setup.py: FAISS comes from exactly one of the cpu/gpu extras, never both."""

import os
import runpy

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
