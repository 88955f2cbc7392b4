"""A saved gallery index: features of a folder of person crops, built once and searched many
times (``tools/search.py build | add | query`` and the same verbs here).

An index folder holds ``features.npy`` (n, D) float32 unit rows, ``paths.txt`` (one absolute
image path per row), ``config.yaml`` (the model's merged config) and ``index.json`` (format,
count, metric, the sha256 of the weights file and the preprocessing). Queries are embedded by
the same model; a query with other weights, another model or other preprocessing than the
index's is refused, since its distances to the gallery would mean nothing. Approximate FAISS
indexes (``approx_<kind>.faiss``) are built on first use and dropped when images are added.

>>> index = GalleryIndex.build("configs/demo/ptl.yml", "crops/", "gallery_index",
...                            weights="output/demo/resnet18_ptl/model_final.pth")
>>> result = index.query("queries/", topk=10)
>>> result.save("search_out")             # results.csv + one rank-list PNG per query
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from .api import FeatureExtractor
from .config import CfgNode, load_config
from .data.transforms import preprocessing
from .errors import UserError
from .retrieval import RankSettings, rank_lists
from .retrieval.approx import APPROX_KINDS, ApproxIndex
from .retrieval.expansion import average_query_expansion
from .utils.misc import atomic_write, write_json, write_text
from .utils.run_folder import CONFIG_FILE
from .visualization.ranks import display_size, draw_rank_list

FORMAT = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
Images = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


class GalleryIndexError(UserError, ValueError):
    """A gallery index folder that is missing, damaged, or does not fit the request."""


def list_images(images: Images, what: str = "--images") -> List[str]:
    """Absolute paths of the images: every image file under a folder (recursively, sorted), or
    the given files in order."""
    if isinstance(images, (str, os.PathLike)):
        root = os.fspath(images)
        if os.path.isfile(root):
            return [os.path.abspath(root)]
        if not os.path.isdir(root):
            raise GalleryIndexError(f"{what} {root}: no such folder; give a folder of images")
        found = []
        for base, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                    found.append(os.path.abspath(os.path.join(base, f)))
        if not found:
            raise GalleryIndexError(
                f"{what} {root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in it or below it"
            )
        return found
    return [os.path.abspath(os.fspath(p)) for p in images]


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes (the weights' identity, whatever the file is called)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, tuple):
        return [_plain(v) for v in node]
    return node


def fingerprint(cfg: CfgNode, weights: Optional[str]) -> Dict[str, Any]:
    """The model (architecture keys and weights hash) and preprocessing behind features."""
    model = _plain(cfg.MODEL)
    model.pop("WEIGHTS", None)
    if not weights:
        raise GalleryIndexError(
            "a gallery index needs trained weights: set MODEL.WEIGHTS path/model_final.pth"
        )
    if not os.path.isfile(weights):
        raise GalleryIndexError(f"MODEL.WEIGHTS {weights}: no such file")
    return {
        "weights_sha256": file_sha256(weights),
        "model": model,
        "preprocessing": preprocessing(cfg),
    }


def _difference(mine: Dict[str, Any], theirs: Dict[str, Any]) -> Optional[str]:
    """The first way two fingerprints differ, said in words; None if they are the same."""
    if mine["weights_sha256"] != theirs["weights_sha256"]:
        return (
            f"other weights (sha256 {theirs['weights_sha256'][:12]}, the index's "
            f"{mine['weights_sha256'][:12]})"
        )
    for part in ("preprocessing", "model"):
        for key in sorted(set(mine[part]) | set(theirs[part])):
            if mine[part].get(key) != theirs[part].get(key):
                name = f"{'MODEL.' if part == 'model' else 'preprocessing '}{key}"
                return f"{name} {theirs[part].get(key)!r} (the index's {mine[part].get(key)!r})"
    return None


@dataclass
class SearchResult:
    """Ranked gallery images of every query: ``indices`` / ``distances`` (m, k), nearest first
    (-1 / inf ends a short row), into ``gallery`` paths."""

    queries: List[str]
    gallery: List[str]
    indices: np.ndarray
    distances: np.ndarray
    method: str = "exact"

    def rows(self) -> List[Dict[str, Any]]:
        """One dict per (query, rank): query, rank (1-based), gallery, distance."""
        out = []
        for qi, q in enumerate(self.queries):
            for r, (j, d) in enumerate(zip(self.indices[qi], self.distances[qi]), start=1):
                if j >= 0:
                    out.append(
                        {"query": q, "rank": r, "gallery": self.gallery[j], "distance": float(d)}
                    )
        return out

    def write_csv(self, path: str) -> str:
        """``query, rank, gallery, distance`` rows (distance with 6 decimals)."""

        def write(f) -> None:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["query", "rank", "gallery", "distance"])
            for row in self.rows():
                w.writerow([row["query"], row["rank"], row["gallery"], f"{row['distance']:.6f}"])

        atomic_write(path, write)
        return path

    def draw(self, out_dir: str, size=(256, 128), limit: Optional[int] = None) -> List[str]:
        """One rank-list PNG per query (the first ``limit``), as the evaluation draws them;
        frames are grey: a folder of crops has no identity labels to judge matches by."""
        paths = []
        tile = display_size(size)
        for qi, q in enumerate(self.queries[:limit]):
            keep = self.indices[qi] >= 0
            ranked = [self.gallery[j] for j in self.indices[qi][keep]]
            name = f"query{qi:05d}_{os.path.splitext(os.path.basename(q))[0]}.png"
            paths.append(
                draw_rank_list(
                    q,
                    ranked,
                    [None] * len(ranked),
                    self.distances[qi][keep].tolist(),
                    os.path.join(out_dir, name),
                    tile,
                    query_label=os.path.basename(q)[:18],
                    gallery_labels=[os.path.basename(p)[:18] for p in ranked],
                )
            )
        return paths

    def save(self, out_dir: str, draw: bool = True, size=(256, 128)) -> str:
        """``out_dir/results.csv`` and (``draw``) ``out_dir/ranks/*.png``; returns the CSV."""
        csv_path = self.write_csv(os.path.join(out_dir, "results.csv"))
        if draw:
            self.draw(os.path.join(out_dir, "ranks"), size)
        return csv_path


class GalleryIndex:
    """Features of gallery images saved in ``index_dir``; see the module docstring."""

    def __init__(self, index_dir: str, meta: Dict[str, Any], feats: np.ndarray, paths: List[str]):
        self.index_dir, self.meta, self.features, self.paths = index_dir, meta, feats, paths
        self._extractor: Optional[FeatureExtractor] = None

    # -- files ---------------------------------------------------------------------------
    @staticmethod
    def _file(index_dir: str, name: str) -> str:
        return os.path.join(index_dir, name)

    @classmethod
    def exists(cls, index_dir: str) -> bool:
        return os.path.isfile(cls._file(index_dir, "index.json"))

    @classmethod
    def load(cls, index_dir: str) -> GalleryIndex:
        """Open a saved index; a missing or inconsistent folder is refused in one line."""
        if not cls.exists(index_dir):
            raise GalleryIndexError(
                f"--index {index_dir}: not a gallery index (no index.json); create one with "
                "tools/search.py build --config-file CFG MODEL.WEIGHTS W --images DIR "
                f"--index {index_dir}"
            )
        with open(cls._file(index_dir, "index.json"), encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("format") != FORMAT:
            raise GalleryIndexError(
                f"--index {index_dir}: index format {meta.get('format')!r}, this reidbox reads "
                f"{FORMAT}; rebuild it with tools/search.py build"
            )
        feats = np.load(cls._file(index_dir, "features.npy"))
        with open(cls._file(index_dir, "paths.txt"), encoding="utf-8") as f:
            paths = [ln.rstrip("\n") for ln in f if ln.strip()]
        if not (len(feats) == len(paths) == meta["count"]):
            raise GalleryIndexError(
                f"--index {index_dir}: {len(feats)} features, {len(paths)} paths, index.json "
                f"says {meta['count']}; the folder is damaged: rebuild it"
            )
        return cls(index_dir, meta, feats, paths)

    def _save(self) -> None:
        d = self.index_dir
        atomic_write(
            self._file(d, "features.npy"), lambda f: np.save(f, self.features), binary=True
        )
        write_text("".join(p + "\n" for p in self.paths), self._file(d, "paths.txt"))
        self.meta["count"] = len(self.paths)
        write_json(self.meta, self._file(d, "index.json"))  # last: it commits the others

    # -- the model -----------------------------------------------------------------------
    @property
    def config_path(self) -> str:
        return self._file(self.index_dir, CONFIG_FILE)

    def config(self) -> CfgNode:
        """The index's model config (``config.yaml`` in the index folder)."""
        return load_config(self.config_path)

    def check_model(self, cfg: CfgNode, weights: Optional[str] = None) -> None:
        """Refuse ``cfg`` + ``weights`` (default ``MODEL.WEIGHTS``) unless they embed images
        as the index's features were embedded."""
        theirs = fingerprint(cfg, weights or cfg.MODEL.WEIGHTS or None)
        diff = _difference(self.meta["fingerprint"], theirs)
        if diff:
            raise GalleryIndexError(
                f"--index {self.index_dir} was built with another model or preprocessing: "
                f"{diff}; query with the index's config and weights, or build a new index"
            )

    def extractor(
        self,
        cfg: Optional[CfgNode] = None,
        device: str = "auto",
        batch_size: int = 64,
    ) -> FeatureExtractor:
        """The model that embeds queries and added images (checked against the index)."""
        if cfg is None and self._extractor is not None:
            return self._extractor
        own = cfg is None
        cfg = self.config() if own else cfg
        weights = cfg.MODEL.WEIGHTS or self.meta["weights"]
        if not os.path.isfile(weights):
            raise GalleryIndexError(
                f"the weights of index {self.index_dir} are gone: {weights} is no file; "
                "pass MODEL.WEIGHTS NEW_PATH (the same file, checked by its sha256)"
            )
        self.check_model(cfg, weights)
        fx = FeatureExtractor(cfg, weights, device, batch_size)
        if own:
            self._extractor = fx
        return fx

    # -- verbs ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        config: Union[str, CfgNode],
        images: Images,
        index_dir: str,
        weights: Optional[str] = None,
        device: str = "auto",
        batch_size: int = 64,
    ) -> GalleryIndex:
        """Embed every image under ``images`` with the model of ``config`` and ``weights``
        (default ``MODEL.WEIGHTS``) and save the index to ``index_dir`` (new or empty)."""
        cfg = load_config(config) if isinstance(config, (str, os.PathLike)) else config
        weights = weights or cfg.MODEL.WEIGHTS or None
        if os.path.exists(index_dir) and (not os.path.isdir(index_dir) or os.listdir(index_dir)):
            raise GalleryIndexError(
                f"--index {index_dir} exists and is not an empty folder; add images to an "
                "index with tools/search.py add, or choose a new folder"
            )
        paths = list_images(images)
        fp = fingerprint(cfg, weights)
        fx = FeatureExtractor(cfg, weights, device, batch_size)
        feats = fx(paths).numpy().astype(np.float32)
        os.makedirs(index_dir, exist_ok=True)
        saved = cfg.clone()
        saved.defrost()
        saved.MODEL.WEIGHTS = os.path.abspath(weights)  # found from any working directory
        write_text(saved.dump(), cls._file(index_dir, CONFIG_FILE))
        meta = {
            "format": FORMAT,
            "count": len(paths),
            "dim": int(feats.shape[1]),
            "metric": cfg.TEST.METRIC,
            "weights": os.path.abspath(weights),
            "fingerprint": fp,
        }
        index = cls(index_dir, meta, feats, paths)
        index._extractor = fx
        index._save()
        return index

    def add(
        self,
        images: Images,
        cfg: Optional[CfgNode] = None,
        device: str = "auto",
        batch_size: int = 64,
    ) -> int:
        """Embed and append the images not yet in the index; returns how many were added.
        Saved approximate indexes are dropped (rebuilt on the next approximate query)."""
        have = set(self.paths)
        new = [p for p in list_images(images) if p not in have]
        if not new:
            return 0
        feats = self.extractor(cfg, device, batch_size)(new).numpy().astype(np.float32)
        self.features = np.concatenate([self.features, feats])
        self.paths = self.paths + new
        for kind in APPROX_KINDS:
            stale = self._file(self.index_dir, f"approx_{kind}.faiss")
            if os.path.exists(stale):
                os.remove(stale)
        self._save()
        return len(new)

    def approx_index(self, kind: str) -> ApproxIndex:
        """The saved approximate index of ``kind``, built (and saved) on first use."""
        path = self._file(self.index_dir, f"approx_{kind}.faiss")
        metric = self.meta["metric"]
        if os.path.exists(path):
            index = ApproxIndex.load(path, kind, metric)
            if index.ntotal == len(self.paths):
                return index
        index = ApproxIndex(kind, metric).build(self.features)
        index.save(path)
        return index

    def search_features(
        self,
        q_feats,
        topk: int = 10,
        rerank: Optional[Dict[str, float]] = None,
        aqe: int = 0,
        approx: Optional[str] = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(indices, distances) (m, k) of query features (embedded by the index's model)."""
        if topk < 1:
            raise GalleryIndexError(f"--topk must be >= 1, got {topk}")
        if approx is not None and rerank is not None:
            raise GalleryIndexError(
                "--rerank needs exact search (it re-scores against every gallery item); "
                "drop --approx or --rerank"
            )
        metric = self.meta["metric"]
        approx_index = self.approx_index(approx) if approx else None

        def search(q, k, rr):
            if approx_index is not None:
                d, i = approx_index.search(q, k)
                return i.numpy(), d.numpy()
            return rank_lists(q, self.features, k, RankSettings(metric, backend="torch", rerank=rr))

        q = torch.as_tensor(np.asarray(q_feats, dtype=np.float32))
        if aqe:
            first, _ = search(q, aqe, None)
            q = average_query_expansion(q, self.features, first, aqe)
        return search(q, topk, rerank)

    def query(
        self,
        images: Images,
        topk: int = 10,
        rerank: Union[bool, Dict[str, float]] = False,
        aqe: int = 0,
        approx: Optional[str] = None,
        cfg: Optional[CfgNode] = None,
        device: str = "auto",
        batch_size: int = 64,
    ) -> SearchResult:
        """The ``topk`` nearest gallery images of every query image, nearest first.

        ``rerank``: True (k1, k2, lambda from the index's ``TEST.RERANK``) or a dict;
        ``aqe``: average each query with its first ``aqe`` results and search again;
        ``approx``: one of ``ivf_flat``, ``ivf_pq``, ``hnsw`` (default exact); ``cfg``: the
        config to embed queries with (checked against the index; default the index's)."""
        queries = list_images(images, "--images")
        fx = self.extractor(cfg, device, batch_size)
        if rerank is True:
            r = fx.cfg.TEST.RERANK
            rerank = {"k1": int(r.K1), "k2": int(r.K2), "lambda_value": float(r.LAMBDA)}
        idx, dist = self.search_features(fx(queries), topk, rerank or None, aqe, approx)
        method = (approx or "exact") + (" + re-ranking" if rerank else "")
        method += f" + AQE({aqe})" if aqe else ""
        return SearchResult(queries, list(self.paths), idx, dist, method)
