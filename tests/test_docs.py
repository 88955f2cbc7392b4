"""Every command and code block of docs/*.md runs as written (issue 22), like the README's
(tests/test_readme.py, whose sandbox and runner this reuses).

Each ```bash command and each ```python block of every page needs an entry in ``SPECS``: how
it runs here (fast, slow, with trailing overrides that shrink it, or with stand-in data in the
real layout), or why it cannot (a GPU, a real dataset, a second machine). Pages whose worked
example has a test of its own name that test instead (``ELSEWHERE``). ```yaml config blocks
load as configs.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import sys
from typing import Dict, List, Tuple

import pytest

from reidbox.config import load_config
from tests.data.fixtures import make_cifar100, make_cuhk03, make_duke
from tests.test_readme import (
    CIFAR_TINY,
    TINY,
    Spec,
    run_in_sandbox,
    sandbox,  # noqa: F401  (the fixture)
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")

# Pages with a test of their own that runs the page's blocks as written.
ELSEWHERE = {
    "custom_dataset.md": "tests/data/test_custom_dataset.py",
    "custom_model.md": "tests/modeling/test_custom_model_doc.py",
    "search.md": "tests/test_search_doc.py",
}

GPU = "needs GPUs (a CPU run of the same path: the next command of docs/distributed.md)"
REAL = "needs the real dataset under /data; the same config on stand-in data runs in test_readme"
CIFAR100 = ["DATASETS.ROOT", "cifar_data"] + CIFAR_TINY  # the stand-in for /data
TRAIN_BASELINE = "python tools/train_net.py --config-file configs/demo/baseline.yml"
TRANSFER_DEMO = (
    "python tools/demo.py --transfer --output-dir output/demo/transfer --seeds 0 "
    + shlex.join(TINY)
)
CELL_POOLING = shlex.join(
    shlex.split(
        'python tools/compare.py --config-file configs/demo/transfer.yml --variant "max: '
        'MODEL.HEADS.NAME paper MODEL.PTL.ENABLED True MODEL.PTL.CELL_POOLING max" --variant '
        '"avg: MODEL.HEADS.NAME paper MODEL.PTL.ENABLED True MODEL.PTL.CELL_POOLING avg" '
        "--seeds 0 1 2 --output-dir output/compare/cell_pooling MODEL.WEIGHTS "
        "output/demo/transfer/pretrain/model_final.pth"
    )
)
XDOMAIN = (
    "python tools/test_net.py --config-file configs/demo/baseline.yml MODEL.WEIGHTS "
    "output/resnet18/model_final.pth OUTPUT_DIR output/xdomain DATASETS.TEST "
) + shlex.quote("['synthetic', 'synthetic_a', 'synthetic_b', 'synthetic_c']")
CIFAR100_TRAIN = (
    "python tools/train_net.py --config-file configs/cifar100/ptlv2_densenet100_plus.yml "
    "DATASETS.ROOT /data"
)
CIFAR_PTL = (
    "python tools/train_net.py --config-file configs/demo/cifar.yml OUTPUT_DIR "
    "output/demo/cifar_ptl_v2"
)
CIFAR_PLAIN = (
    CIFAR_PTL.replace("cifar_ptl_v2", "cifar_plain")
    + " MODEL.META_ARCHITECTURE classifier MODEL.PTL.ENABLED False"
)

SPECS: Dict[Tuple[str, str], Spec] = {
    # classification.md
    (
        "classification.md",
        "python tools/train_net.py --config-file configs/demo/cifar.yml OUTPUT_DIR "
        "output/demo/cifar",
    ): Spec("slow", append=CIFAR_TINY),
    ("classification.md", CIFAR100_TRAIN): Spec("slow", append=CIFAR100),
    (
        "classification.md",
        "python tools/train_net.py --config-file configs/cifar100/ptlv2_densenet100_plus.yml "
        "--eval-only MODEL.WEIGHTS output/cifar100/ptlv2_densenet100_plus/model_final.pth",
    ): Spec("slow", append=CIFAR100, needs=[CIFAR100_TRAIN]),
    (
        "classification.md",
        "python tools/loss_surface.py --runs output/cifar100/ptlv2_densenet100 "
        "output/cifar100/densenet100 --labels DenseNet-100+PTL-v2 DenseNet-100 --output-dir "
        "output/fig3 --dim 2 --range -1 1 --points 21 --num-samples 5000 --device cuda "
        "DATASETS.ROOT /data",
    ): Spec(
        "skip",
        reason="Fig. 3 at full size: two CIFAR-100 runs and a GPU; the same tool "
        "on the demo runs below",
    ),
    ("classification.md", "python tools/loss_surface.py ... --replot --vmax 10"): Spec(
        "skip", reason="'...' stands for the previous command's arguments"
    ),
    ("classification.md", CIFAR_PTL): Spec("slow", append=CIFAR_TINY),
    ("classification.md", CIFAR_PLAIN): Spec("slow", append=CIFAR_TINY),
    (
        "classification.md",
        "python tools/loss_surface.py --runs output/demo/cifar_ptl_v2 output/demo/cifar_plain "
        "--labels PTL-v2 plain --output-dir output/demo/loss_surface --points 7 --num-samples 100",
    ): Spec(
        "slow",
        append=["--points", "3", "--num-samples", "32", "--no-progress"],
        needs=[CIFAR_PTL, CIFAR_PLAIN],
    ),
    # datasets.md
    ("datasets.md", "python tools/dataset_stats.py market1501 market_duke --root datasets"): Spec(),
    (
        "datasets.md",
        "python tools/dataset_stats.py cuhk03 --set variant=detected --set protocol=classic "
        "--set split=3",
    ): Spec(append=["--root", "cuhk_data"]),
    ("datasets.md", "python block 1"): Spec(),
    # distributed.md
    (
        "distributed.md",
        "torchrun --nproc_per_node 4 tools/train_net.py --config-file configs/msmt17/ptl_d161.yml",
    ): Spec("skip", reason=GPU),
    (
        "distributed.md",
        "torchrun --nnodes 2 --nproc_per_node 8 --node_rank 0 --master_addr HOST --master_port "
        "29500 tools/train_net.py --config-file configs/msmt17/ptl_d161.yml",
    ): Spec("skip", reason="needs two machines with 8 GPUs each"),
    (
        "distributed.md",
        "torchrun --standalone --nproc_per_node 2 tools/train_net.py --config-file "
        "configs/demo/baseline.yml",
    ): Spec("slow", append=TINY + ["OUTPUT_DIR", "output/torchrun_cpu"]),
    # evaluation.md
    ("evaluation.md", "python block 1"): Spec(),
    # model_zoo.md
    ("model_zoo.md", "python tools/model_info.py --list"): Spec(
        "skip", reason="run as written, and checked against the page, by test_backbone_zoo.py"
    ),
    # ptl.md
    (
        "ptl.md",
        "python tools/compare.py --config-file configs/demo/baseline.yml --seeds 0 1 2 "
        "--output-dir output/compare/demo_ptl",
    ): Spec("slow", append=TINY),
    # needs the transfer demo's pre-trained model (tiny, one seed; reused if made already)
    ("ptl.md", CELL_POOLING): Spec(
        "slow", rewrite=lambda c: TRANSFER_DEMO + " && " + c + " " + shlex.join(TINY)
    ),
    # synthetic.md
    ("synthetic.md", TRAIN_BASELINE): Spec("slow", append=TINY),
    ("synthetic.md", XDOMAIN): Spec("slow", append=TINY, needs=[TRAIN_BASELINE]),
    (
        "synthetic.md",
        "OMP_NUM_THREADS=1 nice -n 5 python tools/demo.py --transfer --output-dir "
        "output/demo/transfer --no-progress",
    ): Spec("slow", append=[*TINY, "--seeds", "0"]),
    ("synthetic.md", "python block 1"): Spec("slow"),  # the default size: ~4,500 images
    # transfer.md
    (
        "transfer.md",
        "python tools/transfer_chain.py Duke Market MSMT17 --config-file "
        "configs/chains/d161_duke_market_msmt17.yml",
    ): Spec("skip", reason=REAL),
    (
        "transfer.md",
        "python tools/transfer_chain.py --config-file "
        "configs/chains/d161_ptl_duke_market_msmt17.yml",
    ): Spec("skip", reason=REAL),
    (
        "transfer.md",
        "python tools/transfer_chain.py synthetic_a synthetic_b synthetic_c --config-file "
        "configs/demo/chain.yml SOLVER.MAX_EPOCHS 3",
    ): Spec("slow", append=TINY),
}


def _blocks(page: str, lang: str) -> List[str]:
    text = open(os.path.join(DOCS, page), encoding="utf-8").read()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def doc_items() -> List[Tuple[str, str, str]]:
    """(page, key, what runs) of every page: bash commands (continuations joined, comments
    cut) and python blocks (keyed ``python block N``)."""
    items = []
    for path in sorted(glob.glob(os.path.join(DOCS, "*.md"))):
        page = os.path.basename(path)
        if page in ELSEWHERE:
            continue
        for block in _blocks(page, "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                tokens = shlex.split(line, comments=True)
                if tokens:
                    cmd = " ".join(shlex.quote(t) for t in tokens)
                    items.append((page, cmd, cmd))
        for i, block in enumerate(_blocks(page, "python"), start=1):
            items.append((page, f"python block {i}", block))
    return items


def test_every_docs_command_and_block_has_a_spec():
    items = {(page, key) for page, key, _ in doc_items()}
    assert len(items) >= 15
    missing = sorted(items - set(SPECS))
    assert not missing, f"docs commands/blocks without an entry in tests/test_docs.py: {missing}"
    stale = sorted(set(SPECS) - items)
    assert not stale, f"SPECS entries no longer in the docs: {stale}"
    for key, spec in SPECS.items():
        assert spec.kind != "skip" or spec.reason, key
    for path in glob.glob(os.path.join(DOCS, "*.md")):  # a command is never in a plain block
        for block in re.findall(r"```\n(.*?)```", open(path, encoding="utf-8").read(), re.S):
            starts = ("python ", "torchrun ", "make ", "pip ", "reidbox ")
            assert not any(ln.startswith(starts) for ln in block.splitlines()), (path, block)
    for page, test in ELSEWHERE.items():  # those pages' tests read the page itself
        assert f'"{page}"' in open(os.path.join(ROOT, test), encoding="utf-8").read(), test


@pytest.fixture(scope="module")
def docs_box(sandbox):  # noqa: F811  (the imported fixture)
    """The README's sandbox plus the stand-ins the docs' commands read: DukeMTMC-reID beside
    Market-1501, CUHK03 (classic splits) and CIFAR-100 for the '/data' of the Table VII cell."""
    if not os.path.isdir(sandbox / "datasets" / "dukemtmc-reid"):
        make_duke(str(sandbox / "datasets"))
        make_cuhk03(str(sandbox / "cuhk_data"))
        make_cifar100(str(sandbox / "cifar_data"))
    return sandbox


_done: set = set()


def _run(page: str, key: str, box) -> None:
    spec = SPECS[(page, key)]
    for need in spec.needs:
        if (page, need) not in _done:
            _run(page, need, box)
    body = {k: body for p, k, body in doc_items() if p == page}[key]
    if key.startswith("python block"):
        run_in_sandbox([sys.executable, "-c", body], box, f"{page}: {key}")
    else:
        line = spec.rewrite(body) if spec.rewrite else body
        line += " " + shlex.join(spec.append) if spec.append else ""
        run_in_sandbox(["bash", "-c", line], box, f"{page}: {body}")
    _done.add((page, key))


def _params(kind: str):
    marks = [pytest.mark.slow] if kind == "slow" else []
    return [
        pytest.param(page, key, marks=marks, id=f"{page}:{key[:50]}")
        for page, key, _ in doc_items()
        if (page, key) in SPECS and SPECS[(page, key)].kind == kind
    ]


@pytest.mark.parametrize("page,key", _params("fast"))
def test_docs_command(page, key, docs_box):
    _run(page, key, docs_box)


@pytest.mark.parametrize("page,key", _params("slow"))
def test_docs_heavy_command(page, key, docs_box):
    _run(page, key, docs_box)


@pytest.mark.parametrize("page,key", _params("skip"))
def test_docs_command_not_run_here(page, key):
    pytest.skip(SPECS[(page, key)].reason)


def test_docs_yaml_configs_load(tmp_path):
    """A config fragment shown in the docs merges into the defaults as written."""
    found = 0
    for path in sorted(glob.glob(os.path.join(DOCS, "*.md"))):
        page = os.path.basename(path)
        if page in ELSEWHERE:
            continue
        for i, block in enumerate(_blocks(page, "yaml")):
            f = tmp_path / f"{page}_{i}.yml"
            f.write_text(block)
            load_config(str(f))
            found += 1
    assert found >= 1
