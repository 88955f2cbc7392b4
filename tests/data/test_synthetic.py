"""The embedded synthetic dataset: determinism, Market layout, distractors/junk, regeneration."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from reidbox.data.datasets.base import DatasetError
from reidbox.data.datasets.market1501 import MARKET_NAME
from reidbox.data.synthetic import MANIFEST, SPLITS, generate_synthetic
from reidbox.registry import DATASETS

SMALL = dict(num_train_ids=6, num_test_ids=5, num_cameras=4, image_size=(64, 32))


def _files(folder):
    out = {}
    for split in SPLITS:
        for name in sorted(os.listdir(os.path.join(folder, split))):
            with open(os.path.join(folder, split, name), "rb") as fh:
                out[f"{split}/{name}"] = fh.read()
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("syn") / "synthetic")
    generate_synthetic(out, seed=3, **SMALL)
    return out


def test_same_seed_gives_identical_bytes(small, tmp_path):
    again = str(tmp_path / "again")
    generate_synthetic(again, seed=3, **SMALL)
    assert _files(small) == _files(again)


def test_other_seed_differs(small, tmp_path):
    other = str(tmp_path / "other")
    generate_synthetic(other, seed=4, **SMALL)
    assert _files(small) != _files(other)


def test_layout_and_names_follow_market_grammar(small):
    assert sorted(os.listdir(small)) == sorted(list(SPLITS) + [MANIFEST])
    for split in SPLITS:
        names = os.listdir(os.path.join(small, split))
        assert names
        for name in names:
            m = MARKET_NAME.match(name)
            assert m is not None, name
            if split == "query":
                assert name.endswith("_00.jpg")
    first = sorted(os.listdir(os.path.join(small, "query")))[0]
    with Image.open(os.path.join(small, "query", first)) as im:
        assert im.size == (32, 64)  # PIL size is (width, height)


def test_distractors_and_junk_only_in_gallery(small):
    pids = defaultdict(set)
    for split in SPLITS:
        for name in os.listdir(os.path.join(small, split)):
            pids[split].add(MARKET_NAME.match(name).group(1))
    assert "0000" in pids["bounding_box_test"] and "-1" in pids["bounding_box_test"]
    assert "0000" not in pids["query"] | pids["bounding_box_train"]
    assert "-1" not in pids["query"] | pids["bounding_box_train"]
    assert not (pids["query"] & pids["bounding_box_train"])  # disjoint identities


def test_parsed_dataset_query_has_cross_camera_match(tmp_path):
    ds = DATASETS.get("synthetic")(root=str(tmp_path), **SMALL)
    assert ds.num_train_pids == SMALL["num_train_ids"]
    assert len({s.pid for s in ds.query}) == SMALL["num_test_ids"]
    assert all(s.pid != -1 for s in ds.gallery)  # junk dropped by the Market parser
    assert any(s.pid == 0 for s in ds.gallery)
    gal = {(s.pid, s.camid) for s in ds.gallery}
    seen = set()
    for q in ds.query:
        assert any(p == q.pid and c != q.camid for p, c in gal), q
        assert (q.pid, q.camid) not in seen  # one query per identity and camera
        seen.add((q.pid, q.camid))
    per_id = defaultdict(list)
    for s in ds.train:
        per_id[s.pid].append(s.camid)
    assert all(8 <= len(c) <= 20 and len(set(c)) >= 2 for c in per_id.values())


def test_domains_differ(tmp_path):
    means = {}
    for name in ("synthetic", "synthetic_a", "synthetic_b", "synthetic_c"):
        ds = DATASETS.get(name)(root=str(tmp_path), **SMALL)
        folder = DATASETS.get(name).folder_name(**SMALL)
        assert os.path.isfile(os.path.join(str(tmp_path), folder, MANIFEST))
        imgs = [np.asarray(Image.open(s.path), dtype=np.float32) for s in ds.gallery[:40]]
        means[name] = np.mean(imgs)
    assert len({DATASETS.get(n).dataset_dir for n in means}) == 4
    # the indoor domain is brighter than the dusk one
    assert means["synthetic_a"] > means["synthetic_b"] + 20


def test_complete_generation_is_reused(small):
    before = os.stat(os.path.join(small, MANIFEST)).st_mtime_ns
    generate_synthetic(small, seed=3, **SMALL)
    assert os.stat(os.path.join(small, MANIFEST)).st_mtime_ns == before


def test_partial_folder_is_regenerated(tmp_path):
    out = str(tmp_path / "synthetic")
    generate_synthetic(out, seed=3, **SMALL)
    reference = _files(out)
    os.remove(os.path.join(out, MANIFEST))  # as if the run had been interrupted
    victim = sorted(os.listdir(os.path.join(out, "query")))[0]
    os.remove(os.path.join(out, "query", victim))
    generate_synthetic(out, seed=3, **SMALL)
    assert _files(out) == reference
    left = [n for n in os.listdir(str(tmp_path)) if n.startswith(".")]
    assert left == [".synthetic.lock"]  # temp folders gone; the builders' lock file stays


def test_other_parameters_regenerate_or_raise(tmp_path):
    out = str(tmp_path / "synthetic")
    generate_synthetic(out, seed=3, **SMALL)
    with pytest.raises(DatasetError, match="other parameters"):
        generate_synthetic(out, seed=3, overwrite=False, **dict(SMALL, num_test_ids=4))
    generate_synthetic(out, seed=3, **dict(SMALL, num_test_ids=4))
    with open(os.path.join(out, MANIFEST)) as fh:
        assert json.load(fh)["params"]["num_test_ids"] == 4
    queries = {MARKET_NAME.match(n).group(1) for n in os.listdir(os.path.join(out, "query"))}
    assert len(queries) == 4


def test_foreign_folder_is_never_deleted(tmp_path):
    out = tmp_path / "synthetic"
    out.mkdir()
    (out / "my_notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a synthetic generation"):
        generate_synthetic(str(out), seed=3, **SMALL)
    assert (out / "my_notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(num_cameras=7), "num_cameras"),
        (dict(num_test_ids=0), "num_test_ids"),
        (dict(style="mars"), "unknown synthetic style"),
        (dict(image_size=(8, 4)), "image_size"),
    ],
)
def test_bad_arguments_are_named(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic(str(tmp_path / "s"), seed=0, **dict(SMALL, **bad))


def test_cross_camera_is_harder_than_same_camera(tmp_path):
    """With raw tiny-thumbnail features, matching within a camera beats matching across them."""
    ds = DATASETS.get("synthetic")(
        root=str(tmp_path), num_train_ids=1, num_test_ids=30, num_cameras=4, image_size=(64, 32)
    )
    gallery = [s for s in ds.gallery if s.pid > 0]

    def feats(items):
        x = np.stack(
            [np.asarray(Image.open(s.path).resize((4, 8)), np.float32).ravel() for s in items]
        )
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    q, g = feats(ds.query), feats(gallery)
    gp, gc = np.array([s.pid for s in gallery]), np.array([s.camid for s in gallery])
    dist = ((q[:, None] - g[None]) ** 2).sum(-1)
    same, cross = [], []
    for i, s in enumerate(ds.query):
        for hits, mask in ((same, gc == s.camid), (cross, gc != s.camid)):
            if (gp[mask] == s.pid).any():
                j = np.flatnonzero(mask)[np.argmin(dist[i, mask])]
                hits.append(gp[j] == s.pid)
    assert np.mean(same) > np.mean(cross) + 0.15, (np.mean(same), np.mean(cross))


def test_other_sizes_never_replace_the_default_folder(tmp_path):
    """A run at another size (issue 22.1) writes its own folder; the default-size data, and the
    results measured on it, stay as they were."""
    Synthetic = DATASETS.get("synthetic")
    default = dict(num_train_ids=150, num_test_ids=150, num_cameras=6, image_size=(128, 64))
    assert Synthetic.folder_name(**default) == "synthetic"
    assert Synthetic.folder_name(**SMALL) == "synthetic-6+5ids-4cams-64x32"
    assert DATASETS.get("synthetic_b").folder_name(**SMALL) == "synthetic_b-6+5ids-4cams-64x32"
    first = Synthetic(root=str(tmp_path), **SMALL)
    reference = _files(str(tmp_path / "synthetic-6+5ids-4cams-64x32"))
    other = Synthetic(root=str(tmp_path), **dict(SMALL, num_train_ids=7))
    assert first.name == other.name == "synthetic"  # results keep the dataset's name
    assert sorted(n for n in os.listdir(str(tmp_path)) if not n.endswith(".lock")) == [
        "synthetic-6+5ids-4cams-64x32",
        "synthetic-7+5ids-4cams-64x32",
    ]
    assert _files(str(tmp_path / "synthetic-6+5ids-4cams-64x32")) == reference
    assert len({s.pid for s in other.train}) == 7 and len({s.pid for s in first.train}) == 6
    # statistics read what lies there without generating the default size
    assert Synthetic.existing_options(str(tmp_path))["num_train_ids"] in (6, 7)
    assert not os.path.exists(str(tmp_path / "synthetic"))


def test_a_datasets_root_that_is_a_file_names_the_setting(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(DatasetError, match=r"^synthetic: cannot generate into DATASETS.ROOT "):
        DATASETS.get("synthetic")(root=str(afile), **SMALL)
    assert afile.read_text() == "not a folder"
