"""Several processes building the same dataset files at once (the ranks of one DDP job, two runs
sharing ``DATASETS.ROOT``): one builds under a lock, the others wait, and a folder a process has
been handed is never replaced under it. CI once lost a 2-rank gloo run to this race: the later
rank renamed its own generation over the folder the earlier rank was already reading."""

import multiprocessing as mp
import os

import pytest

from reidbox.data.cifar_synthetic import generate_synthetic_cifar
from reidbox.data.datasets.cuhk03 import extract_images
from reidbox.data.synthetic import generate_synthetic

from .fixtures import make_cuhk03


def _synthetic(out):
    generate_synthetic(out, num_train_ids=3, num_test_ids=2, num_cameras=2, image_size=(16, 16))
    return os.stat(out).st_ino, sorted(os.listdir(os.path.join(out, "query")))


def _cifar(out):
    generate_synthetic_cifar(out, kind="cifar10", train_per_class=2, test_per_class=1)
    final = os.path.join(out, "cifar", "cifar-10-batches-py")
    return os.stat(final).st_ino, sorted(os.listdir(final))


def _cuhk03(mat):
    folder, pairs = extract_images(mat, "labeled")
    return pairs, sorted(os.listdir(folder))


def _race(fn, arg, n=4):
    ctx = mp.get_context("fork")
    with ctx.Pool(n) as pool:
        return pool.map(fn, [arg] * n)


@pytest.mark.parametrize("fn", [_synthetic, _cifar], ids=["synthetic", "cifar"])
def test_concurrent_builders_share_one_folder(tmp_path, fn):
    out = str(tmp_path / "built")
    results = _race(fn, out)
    # every process got the same, still-present folder (same inode now as when it returned)
    assert len({r[0] for r in results}) == 1
    assert results[0][0] == fn(out)[0]
    assert all(r[1] == results[0][1] and r[1] for r in results)


def test_concurrent_cuhk03_extraction(tmp_path):
    make_cuhk03(str(tmp_path))
    mat = os.path.join(str(tmp_path), "cuhk03", "cuhk03_release", "cuhk-03.mat")
    results = _race(_cuhk03, mat)
    assert all(r == results[0] for r in results) and results[0][1]
