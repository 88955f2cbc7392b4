import os
import pickle

import numpy as np
import pytest
import torch

from reidbox.data import DatasetError, build_dataset
from reidbox.data.classification import ArrayImageDataset, ClassificationDataset
from reidbox.data.datasets.cifar import load_batch

from .fixtures import make_cifar10, make_cifar100


def _rows(images):  # (N, 32, 32, 3) -> (N, 3072) in the CIFAR row layout
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def test_fixture_is_a_python2_pickle(tmp_path):
    exp = make_cifar10(str(tmp_path))
    path = os.path.join(exp["base"], "data_batch_1")
    with open(path, "rb") as f, pytest.raises(UnicodeDecodeError):
        pickle.load(f)  # default ASCII decoding fails on py2 byte strings, as with the release
    with open(path, "rb") as f:
        assert b"data" in pickle.load(f, encoding="bytes")
    assert set(load_batch(path)) == {"batch_label", "labels", "data", "filenames"}


def test_cifar10(tmp_path):
    exp = make_cifar10(str(tmp_path))
    ds = build_dataset("cifar10", root=str(tmp_path))
    assert isinstance(ds, ClassificationDataset)
    assert ds.classes == exp["classes"] and ds.num_classes == 10
    assert ds.train.images.shape == (30, 32, 32, 3) and ds.train.images.dtype == np.uint8
    np.testing.assert_array_equal(_rows(ds.train.images), exp["train_data"])
    np.testing.assert_array_equal(ds.train.labels, exp["train_labels"])
    np.testing.assert_array_equal(_rows(ds.test.images), exp["test_data"])
    # R plane first: pixel (0, 1) red = byte 1, green = byte 1025
    assert ds.test.images[0, 0, 1, 0] == exp["test_data"][0, 1]
    assert ds.test.images[0, 0, 1, 1] == exp["test_data"][0, 1025]
    assert ds.task == "classification" and not hasattr(ds, "query")  # no fake retrieval split
    assert build_dataset("cifar10", root=exp["base"]).train.images.shape[0] == 30


def test_cifar100_fine_and_coarse(tmp_path):
    exp = make_cifar100(str(tmp_path))
    ds = build_dataset("cifar100", root=str(tmp_path))
    assert ds.num_classes == 100 and ds.classes == exp["classes"]
    np.testing.assert_array_equal(ds.train.labels, exp["train_labels"])
    np.testing.assert_array_equal(_rows(ds.test.images), exp["test_data"])
    coarse = build_dataset("cifar100", root=str(tmp_path), label_type="coarse")
    assert coarse.num_classes == 20
    np.testing.assert_array_equal(coarse.train.labels, np.array(exp["train_labels"]) // 5)


def test_array_dataset(tmp_path):
    make_cifar10(str(tmp_path))
    ds = build_dataset("cifar10", root=str(tmp_path))
    item = ArrayImageDataset(ds.train)[3]
    assert item["images"].shape == (3, 32, 32) and item["images"].dtype == torch.float32
    assert item["targets"] == int(ds.train.labels[3])
    assert torch.allclose(
        item["images"][:, 0, 0] * 255, torch.tensor(ds.train.images[3, 0, 0], dtype=torch.float32)
    )
    batch = next(iter(torch.utils.data.DataLoader(ArrayImageDataset(ds.test), batch_size=4)))
    assert batch["images"].shape == (4, 3, 32, 32)


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match="cifar-10-batches-py"):
        build_dataset("cifar10", root=str(tmp_path))
    exp = make_cifar10(str(tmp_path))
    os.remove(os.path.join(exp["base"], "data_batch_3"))
    with pytest.raises(DatasetError, match="data_batch_3"):
        build_dataset("cifar10", root=str(tmp_path))
    evil = os.path.join(exp["base"], "data_batch_3")
    with open(evil, "wb") as f:
        pickle.dump({"data": os.system}, f, protocol=2)
    with pytest.raises(DatasetError, match="refusing"):
        build_dataset("cifar10", root=str(tmp_path))


@pytest.mark.parametrize("protocol", [2, 5])
def test_python3_pickles_with_bytes_keys_also_load(tmp_path, protocol):
    exp = make_cifar10(str(tmp_path))
    path = os.path.join(exp["base"], "test_batch")
    labels = np.array(exp["test_labels"], dtype=np.int64)
    with open(path, "wb") as f:
        pickle.dump({b"data": exp["test_data"], b"labels": labels}, f, protocol=protocol)
    ds = build_dataset("cifar10", root=str(tmp_path))
    np.testing.assert_array_equal(ds.test.labels, labels)
    np.testing.assert_array_equal(_rows(ds.test.images), exp["test_data"])
