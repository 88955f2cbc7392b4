"""docs/search.md runs as written: its commands and its Python example, in a sandbox holding the
crops folders and the weights file they name."""

import contextlib
import io
import os
import re
import shlex
import shutil

import torch

from reidbox.commands.search import main as search
from reidbox.commands.visualize_actmap import main as actmap
from reidbox.config import load_config
from reidbox.modeling import build_inference_model
from tests.conftest import write_market_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "search.md")
TOOLS = {"tools/search.py": search, "tools/visualize_actmap.py": actmap}


def _blocks(lang):
    text = open(DOC, encoding="utf-8").read()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _sandbox(tmp_path, monkeypatch):
    write_market_tree(str(tmp_path / "data"))
    release = tmp_path / "data" / "market1501" / "Market-1501-v15.09.15"
    test = sorted(os.listdir(release / "bounding_box_test"))
    for name, files in (("gallery", test[:12]), ("new", test[12:])):
        os.makedirs(tmp_path / "crops" / name)
        for f in files:
            shutil.copy(release / "bounding_box_test" / f, tmp_path / "crops" / name / f)
    shutil.copytree(release / "query", tmp_path / "crops" / "queries")
    torch.manual_seed(0)
    model = build_inference_model(load_config("configs/demo/ptl.yml"), None, "cpu")
    os.makedirs(tmp_path / "output" / "resnet18_ptl")
    torch.save({"model": model.state_dict()}, tmp_path / "output/resnet18_ptl/model_final.pth")
    monkeypatch.chdir(tmp_path)


def test_search_doc_commands_and_python_example(tmp_path, monkeypatch):
    _sandbox(tmp_path, monkeypatch)
    (bash,) = _blocks("bash")
    for line in bash.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "python" and argv[1] in TOOLS, line
        assert TOOLS[argv[1]](argv[2:]) == 0, line
    n_queries = len(os.listdir("crops/queries"))
    for out in ("search_out", "search_hnsw"):
        with open(os.path.join(out, "results.csv")) as f:
            assert len(f.read().strip().splitlines()) == 1 + 10 * n_queries
        assert len(os.listdir(os.path.join(out, "ranks"))) == n_queries
    assert os.path.isfile("actmaps/actmap.png")
    assert os.path.isfile("gallery_index/approx_hnsw.faiss")

    (example,) = _blocks("python")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, DOC, "exec"), {"__name__": "doc_example"})
    first, shape = printed.getvalue().strip().split(" ", 1)
    assert first.startswith(str(tmp_path / "crops")) and shape == f"({n_queries}, 5)"
    assert os.path.isfile("api_out/results.csv") and os.listdir("api_out/ranks")
