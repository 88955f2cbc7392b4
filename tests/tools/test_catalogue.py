"""The bad-input catalogue: every kind of bad input a user can give the tools.

Each case runs a tool's ``main`` through ``run_main`` (in-process, so faults such as a full disk
can be injected) beside a finished training run, and must end with exit status 2, exactly one
line on stderr that names the input and the fix, no traceback, and every file of the earlier
run byte-identical. The summary line printed at the end is the catalogue's count
(``pytest tests/tools/test_catalogue.py -s``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import pytest
import torch

from reidbox.utils import run_folder
from reidbox.cli import run_main
from tests.conftest import TINY_OPTS, write_market_tree
from tests.data.fixtures import make_msmt17

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
Needle = Union[str, Tuple[str, ...]]  # a tuple: any one of them


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(
        f"_tool_{name}", os.path.join(ROOT, "tools", f"{name}.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _snapshot(folder: str) -> Dict[str, str]:
    """sha1 of every file of a run (the lock file is bookkeeping, not a result)."""
    out = {}
    for base, _, files in os.walk(folder):
        for f in files:
            if f == run_folder.LOCK_FILE:
                continue
            p = os.path.join(base, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha1(fh.read()).hexdigest()
    return out


@dataclass
class Outcome:
    code: int
    stderr: str
    traceback: str = ""
    stdout: str = ""


def run_tool(name: str, argv: Sequence[str], fault: Optional[Callable] = None) -> Outcome:
    """``tools/<name>.py argv`` in this process; ``fault`` is a context manager factory."""
    err, out = io.StringIO(), io.StringIO()
    code, tb = 0, ""
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(contextlib.redirect_stdout(out))
        if fault:
            stack.enter_context(fault())
        try:
            run_main(_tool(name), list(argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # noqa: BLE001  escaped run_main: a traceback for the user
            code, tb = 1, f"{type(e).__name__}: {e}"
    for folder in list(run_folder._held):  # the in-process runs must not keep folders locked
        run_folder.release_lock(folder)
    return Outcome(code, err.getvalue(), tb, out.getvalue())


@contextlib.contextmanager
def disk_full():
    """Every torch.save and JSON write fails with ENOSPC, as on a full disk."""
    import json as json_mod

    real_save, real_dump = torch.save, json_mod.dump

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    torch.save, json_mod.dump = full, full
    try:
        yield
    finally:
        torch.save, json_mod.dump = real_save, real_dump


class _FullFile:
    """A file on a full disk: every write fails with ENOSPC."""

    def __init__(self, f) -> None:
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@contextlib.contextmanager
def disk_full_as_torch_sees_it():
    """A full disk as it really shows: a Python write fails with ENOSPC, and torch writing to
    a file itself raises its bare RuntimeError (what torch 2.x does on ENOSPC) or, for
    TorchScript, aborts; serialising into memory still works."""
    real_fdopen, real_save, real_jit_save = os.fdopen, torch.save, torch.jit.save

    def fdopen(fd, mode="r", *a, **k):
        f = real_fdopen(fd, mode, *a, **k)
        return _FullFile(f) if mode == "wb" else f  # the run starts; its first checkpoint fails

    def save(obj, f, *a, **k):
        if isinstance(f, io.BytesIO):
            return real_save(obj, f, *a, **k)
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 704 vs 598")

    def jit_save(m, f, *a, **k):
        if isinstance(f, io.BytesIO):
            return real_jit_save(m, f, *a, **k)
        raise RuntimeError("basic_ios::clear: iostream error (the process would abort here)")

    os.fdopen, torch.save, torch.jit.save = fdopen, save, jit_save
    try:
        yield
    finally:
        os.fdopen, torch.save, torch.jit.save = real_fdopen, real_save, real_jit_save


@dataclass
class Case:
    kind: str
    tool: str
    argv: Callable[[Env], List[str]]
    needles: Callable[[Env], List[Needle]]
    forbidden: Sequence[str] = ()
    fault: Optional[Callable] = None
    after: Optional[Callable[[Env], None]] = None  # extra checks (e.g. no temp files left)
    # refused: exit 2 with one "error:" line holding the needles; tolerated: the input is valid
    # (read as meant, or run with a warning): exit 0 and the needles in what the tool printed
    tolerated: bool = False


@dataclass
class Env:
    run: str  # the earlier, finished training run
    market: str
    tmp: str
    extra: Dict[str, str] = field(default_factory=dict)

    def opts(self, out: Optional[str] = None, root: Optional[str] = None) -> List[str]:
        return TINY_OPTS + ["DATASETS.ROOT", root or self.market, "OUTPUT_DIR", out or self.run]

    def market_variant(self, name: str, edit: Callable[[str], None]) -> str:
        root = os.path.join(self.tmp, name)
        if not os.path.isdir(root):
            shutil.copytree(self.market, root)
            edit(os.path.join(root, "market1501", "Market-1501-v15.09.15"))
        return root


def _empty(folder: str) -> None:
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))


def _to_png(folder: str) -> None:
    for f in os.listdir(folder):
        if f.endswith(".jpg"):
            os.rename(os.path.join(folder, f), os.path.join(folder, f[:-4] + ".png"))


def _one_identity(release: str) -> None:
    train = os.path.join(release, "bounding_box_train")
    for f in os.listdir(train):
        if not f.startswith("0001_"):
            os.remove(os.path.join(train, f))


def _no_temps(folder: str) -> None:
    left = [os.path.join(b, f) for b, _, fs in os.walk(folder) for f in fs if ".tmp." in f]
    assert not left, left


def _write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


class _Unsafe:
    pass


def _unsafe_weights(e: Env) -> str:
    path = os.path.join(e.tmp, "unsafe.pth")
    if not os.path.exists(path):
        torch.save({"model": {}, "obj": _Unsafe()}, path)
    return path


def _readonly_dir(e: Env) -> str:
    if os.geteuid() != 0:
        ro = os.path.join(e.tmp, "readonly")
        os.makedirs(ro, exist_ok=True)
        os.chmod(ro, 0o500)
        return os.path.join(ro, "out")
    return "/sys/reidbox_catalogue_out"  # root ignores modes; sysfs refuses new folders


def _other_ids_root(e: Env) -> str:
    root = os.path.join(e.tmp, "market7")
    if not os.path.isdir(root):
        write_market_tree(root, num_train_ids=7)
    return root


def _msmt_bad_list(e: Env) -> str:
    root = os.path.join(e.tmp, "msmt")
    if not os.path.isdir(root):
        exp = make_msmt17(root)
        with open(os.path.join(exp["base"], "list_train.txt"), "ab") as f:
            f.write(b"0003/\xff\xfe caf\xe9.jpg 3\n")
    return root


def _metrics_folder(e: Env, name: str, text: str) -> str:
    folder = os.path.join(e.tmp, name)
    _write(os.path.join(folder, "metrics.json"), text.encode())
    return folder


def _locked_dir(e: Env) -> str:
    return e.extra["locked"]


def _text_file(e: Env, name: str, text: str) -> str:
    return _write(os.path.join(e.tmp, "files", name), text.encode("utf-8"))


def _plugin_yml(e: Env) -> str:
    """A downloaded config beside the module it names (which leaves a mark if it runs)."""
    folder = os.path.join(e.tmp, "downloaded")
    mark = os.path.join(folder, "RAN")
    _write(os.path.join(folder, "cat21_evil.py"), f"open({mark!r}, 'w').close()\n".encode())
    return _write(os.path.join(folder, "reid.yml"), b"PLUGINS: ['cat21_evil']\nSEED: 1\n")


@contextlib.contextmanager
def _plugin_on_path():
    """The downloaded folder on the module path (PYTHONPATH, or the working folder)."""
    folder = [p for p in (os.path.join(t, "downloaded") for t in _TMP) if os.path.isdir(p)][0]
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)
        sys.modules.pop("cat21_evil", None)


_TMP: List[str] = []  # the catalogue's tmp folder, for faults that need a path


def _no_plugin_ran(e: Env) -> None:
    assert not os.path.exists(os.path.join(e.tmp, "downloaded", "RAN")), "the plugin ran"


def _exporting(e: Env, output: str) -> List[str]:
    """export's arguments writing the earlier run's weights as TorchScript to ``output``."""
    weights = ["MODEL.WEIGHTS", os.path.join(e.run, M), "--format", "torchscript"]
    return e.opts(out=os.path.join(e.tmp, "exp")) + weights + ["--output", output]


def _testing(e: Env, weights: str) -> List[str]:
    """test_net's arguments evaluating ``weights`` beside the earlier run."""
    return ["--no-progress"] + e.opts() + ["MODEL.WEIGHTS", weights]


def _nan_weights(e: Env) -> str:
    path = os.path.join(e.tmp, "diverged.pth")
    if not os.path.exists(path):
        state = torch.load(os.path.join(e.run, M))
        model = state["model"]
        key = next(k for k, v in model.items() if v.is_floating_point())
        model[key] = torch.full_like(model[key], float("nan"))
        torch.save(state, path)
    return path


def _plain_pickle(e: Env) -> str:
    import pickle

    path = os.path.join(e.tmp, "weights.pkl")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            pickle.dump({"model": _Unsafe()}, f)
    return path


def _market_is_a_file(e: Env) -> str:
    root = os.path.join(e.tmp, "fileroot")
    _write(os.path.join(root, "market1501"), b"not a folder")
    return root


def _one_upper_case_jpg(release: str) -> None:
    train = os.path.join(release, "bounding_box_train")
    first = sorted(os.listdir(train))[0]
    os.rename(os.path.join(train, first), os.path.join(train, first[:-4] + ".JPG"))


def _train_images(e: Env) -> int:
    train = os.path.join(e.market, "market1501", "Market-1501-v15.09.15", "bounding_box_train")
    return len([f for f in os.listdir(train) if f.endswith(".jpg")])


def _msmt_with_bom(e: Env) -> str:
    root = os.path.join(e.tmp, "msmtbom")
    if not os.path.isdir(root):
        exp = make_msmt17(root)
        path = os.path.join(exp["base"], "list_train.txt")
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(b"\xef\xbb\xbf" + data)  # saved by an editor that adds a byte-order mark
    return root


TRAIN = "train_net"
M = "model_final.pth"
CASES = [
    # 7. tracebacks before the change
    Case(
        "DATALOADER.NUM_INSTANCES 0",
        TRAIN,
        lambda e: e.opts() + ["DATALOADER.NUM_INSTANCES", "0"],
        lambda e: ["DATALOADER.NUM_INSTANCES is 0", "[1, inf)"],
    ),
    Case(
        "SOLVER.IMS_PER_BATCH 0",
        TRAIN,
        lambda e: e.opts() + ["SOLVER.IMS_PER_BATCH", "0"],
        lambda e: ["SOLVER.IMS_PER_BATCH is 0", "e.g. SOLVER.IMS_PER_BATCH 1"],
    ),
    Case(
        "SOLVER.MAX_EPOCHS 0",
        TRAIN,
        lambda e: e.opts() + ["SOLVER.MAX_EPOCHS", "0"],
        lambda e: ["SOLVER.MAX_EPOCHS is 0", "e.g. SOLVER.MAX_EPOCHS 1"],
    ),
    Case(
        "OUTPUT_DIR under a file",
        TRAIN,
        lambda e: e.opts(out=os.path.join(e.run, "metrics.json", "sub")),
        lambda e: [os.path.join(e.run, "metrics.json"), "choose a writable folder"],
    ),
    Case(
        "OUTPUT_DIR on a read-only file system",
        TRAIN,
        lambda e: e.opts(out=_readonly_dir(e)),
        lambda e: [("/sys/reidbox_catalogue_out", "readonly"), ("writable",)],
    ),
    Case(
        "disk full",
        TRAIN,
        lambda e: e.opts(out=os.path.join(e.tmp, "full")),
        lambda e: [os.path.join(e.tmp, "full"), "No space left", "free disk space"],
        fault=disk_full,
        after=lambda e: _no_temps(os.path.join(e.tmp, "full")),
    ),
    Case(
        "--resume over a checkpoint of another architecture",
        TRAIN,
        lambda e: ["--resume"] + e.opts() + ["MODEL.META_ARCHITECTURE", "ptl"],
        lambda e: [
            ("checkpoint_0002.pth", "MODEL.META_ARCHITECTURE"),
            ("another architecture", "differ", "OUTPUT_DIR"),
        ],
    ),
    Case(
        "--resume over a checkpoint of another identity count",
        TRAIN,
        lambda e: ["--resume"] + e.opts(root=_other_ids_root(e)),
        lambda e: [("checkpoint_0002.pth", "identities"), ("identities", "OUTPUT_DIR")],
    ),
    Case(
        "export --output an existing folder",
        "export",
        lambda e: (
            ["--format", "torchscript", "--output", os.path.join(e.run, "tb")]
            + e.opts()
            + ["MODEL.WEIGHTS", os.path.join(e.run, M)]
        ),
        lambda e: [os.path.join(e.run, "tb"), "folder"],
    ),
    Case(
        "export --output under a file",
        "export",
        lambda e: (
            ["--format", "torchscript", "--output", os.path.join(e.run, "metrics.json", "m.pt")]
            + e.opts()
            + ["MODEL.WEIGHTS", os.path.join(e.run, M)]
        ),
        lambda e: [os.path.join(e.run, "metrics.json"), ("file", "folder")],
    ),
    Case(
        "visualize_ranks --out a file",
        "visualize_ranks",
        lambda e: (
            ["--no-progress", "--out", os.path.join(e.run, "metrics.json")]
            + e.opts()
            + ["MODEL.WEIGHTS", os.path.join(e.run, M)]
        ),
        lambda e: [os.path.join(e.run, "metrics.json"), ("folder", "file")],
    ),
    Case(
        "collect_results --out an existing folder",
        "collect_results",
        lambda e: [e.run, "--out", os.path.join(e.run, "tb")],
        lambda e: [os.path.join(e.run, "tb"), "folder"],
    ),
    Case(
        "empty gallery",
        "test_net",
        lambda e: (
            ["--no-progress"]
            + e.opts(
                root=e.market_variant(
                    "nogallery", lambda r: _empty(os.path.join(r, "bounding_box_test"))
                )
            )
            + ["MODEL.WEIGHTS", os.path.join(e.run, M)]
        ),
        lambda e: [("bounding_box_test", "gallery"), ("add", "image")],
    ),
    # 8. silently accepted before the change
    Case(
        "dataset with 1 identity, --overwrite into the earlier run",
        TRAIN,
        lambda e: ["--overwrite"] + e.opts(root=e.market_variant("oneid", _one_identity)),
        lambda e: ["1 identit", ("at least 2", "two")],
    ),
    Case(
        "SOLVER.MAX_EPOCHS -1",
        TRAIN,
        lambda e: e.opts() + ["SOLVER.MAX_EPOCHS", "-1"],
        lambda e: ["SOLVER.MAX_EPOCHS is -1", "[1, inf)"],
    ),
    Case(
        "export without weights",
        "export",
        lambda e: ["--format", "torchscript", "--output", os.path.join(e.tmp, "x.pt")] + e.opts(),
        lambda e: ["MODEL.WEIGHTS", "--allow-untrained"],
    ),
    Case(
        "dataset_stats --set variant=detected on market1501",
        "dataset_stats",
        lambda e: ["market1501", "--root", e.market, "--set", "variant=detected"],
        lambda e: ["variant", "market1501"],
    ),
    Case(
        "the same dataset twice in a chain",
        "transfer_chain",
        lambda e: ["Market", "Market", "--no-progress"] + e.opts(out=os.path.join(e.tmp, "ch")),
        lambda e: ["Market", "twice"],
    ),
    Case(
        "metrics.json without its keys",
        "collect_results",
        lambda e: [_metrics_folder(e, "nokeys", '{"foo": 1}')],
        lambda e: [os.path.join("nokeys", "metrics.json"), "mAP"],
    ),
    # 9. unclear lines before the change
    Case(
        "empty training split",
        TRAIN,
        lambda e: e.opts(
            out=os.path.join(e.tmp, "o1"),
            root=e.market_variant(
                "notrain", lambda r: _empty(os.path.join(r, "bounding_box_train"))
            ),
        ),
        lambda e: ["bounding_box_train", ("no images", "no .jpg", "empty")],
    ),
    Case(
        "split of PNG files",
        TRAIN,
        lambda e: e.opts(
            out=os.path.join(e.tmp, "o2"),
            root=e.market_variant("png", lambda r: _to_png(os.path.join(r, "bounding_box_train"))),
        ),
        lambda e: ["bounding_box_train", ".png", ".jpg"],
    ),
    Case(
        "non-UTF-8 list file",
        "dataset_stats",
        lambda e: ["msmt17", "--root", _msmt_bad_list(e)],
        lambda e: ["list_train.txt", ("UTF-8", "utf-8")],
    ),
    Case(
        "invalid metrics.json",
        "collect_results",
        lambda e: [_metrics_folder(e, "badjson", '{"mAP": 0.5,')],
        lambda e: [os.path.join("badjson", "metrics.json"), "JSON"],
    ),
    Case(
        "unsafe checkpoint as weights",
        "test_net",
        lambda e: ["--no-progress"] + e.opts() + ["MODEL.WEIGHTS", _unsafe_weights(e)],
        lambda e: ["unsafe.pth", "trust"],
        forbidden=("--trust-checkpoint",),
    ),
    Case(
        "random bytes as weights",
        "test_net",
        lambda e: (
            ["--no-progress"]
            + e.opts()
            + ["MODEL.WEIGHTS", _write(os.path.join(e.tmp, "rand.pth"), os.urandom(4096))]
        ),
        lambda e: ["rand.pth", "corrupt"],
        forbidden=("unpickling", "--trust-checkpoint"),
    ),
    # 1.-3. run folders
    Case(
        "a second run in a locked OUTPUT_DIR",
        TRAIN,
        lambda e: e.opts(out=_locked_dir(e)),
        lambda e: ["in use by pid " + e.extra["holder_pid"], "another OUTPUT_DIR"],
    ),
    Case(
        "unknown config key in an earlier run's folder",
        TRAIN,
        lambda e: e.opts() + ["SOLVER.NOT_A_KEY", "1"],
        lambda e: ["SOLVER.NOT_A_KEY"],
    ),
    Case(
        "missing dataset folder, --overwrite into an earlier run's folder",
        TRAIN,
        lambda e: ["--overwrite"] + e.opts(root=os.path.join(e.tmp, "nowhere")),
        lambda e: [os.path.join(e.tmp, "nowhere")],
    ),
    Case(
        "a new run without --resume into an earlier run's folder",
        TRAIN,
        lambda e: ["--no-progress"] + e.opts(),
        lambda e: [e.run, M, "--resume", "--overwrite", "another OUTPUT_DIR"],
    ),
    Case(
        "--overwrite deleting the MODEL.WEIGHTS it starts from",
        TRAIN,
        lambda e: ["--overwrite"] + e.opts() + ["MODEL.WEIGHTS", os.path.join(e.run, M)],
        lambda e: [os.path.join(e.run, M), "--overwrite", "copy it"],
    ),
    Case(
        "missing MSMT17 release (a message drawn over several lines)",
        TRAIN,
        lambda e: [
            "--config-file",
            "msmt17/ptl_d161.yml",
            "DEVICE",
            "cpu",
            "DATASETS.ROOT",
            os.path.join(e.tmp, "nodata"),
            "OUTPUT_DIR",
            os.path.join(e.tmp, "m"),
        ],
        lambda e: ["no MSMT17 release", os.path.join(e.tmp, "nodata"), "docs/datasets.md"],
    ),
    Case(
        "train_net with no config at all",
        TRAIN,
        lambda e: ["--no-progress"],
        lambda e: ["no config given", "--config-file", "KEY VALUE"],
    ),
    Case(
        "--overwrite with --resume",
        TRAIN,
        lambda e: ["--overwrite", "--resume"] + e.opts(),
        lambda e: ["--overwrite", "--resume"],
    ),
    Case(
        "search build into a folder that is not empty (the earlier run)",
        "search",
        lambda e: (
            ["build", "MODEL.WEIGHTS", os.path.join(e.run, M), "--images", e.market]
            + ["--index", e.run]
        ),
        lambda e: ["--index", e.run, "not an empty folder", "tools/search.py add"],
    ),
    Case(
        "search query on a folder that is no index",
        "search",
        lambda e: (
            ["query", "--index", e.run, "--images", e.market]
            + ["--output-dir", os.path.join(e.tmp, "sq")]
        ),
        lambda e: ["not a gallery index", "tools/search.py build"],
    ),
    Case(
        "weights path is a folder",
        "test_net",
        lambda e: ["--no-progress"] + e.opts() + ["MODEL.WEIGHTS", e.run],
        lambda e: [e.run, ".pth"],
    ),
    # issue 21: code in configs, image modes, write errors, silent and unclear cases
    Case(
        "a downloaded yml naming PLUGINS beside the module (no opt-in)",
        TRAIN,
        lambda e: ["--config-file", _plugin_yml(e)] + e.opts(out=os.path.join(e.tmp, "pl")),
        lambda e: ["reid.yml", "cat21_evil", "REIDBOX_PLUGINS=cat21_evil", "PLUGINS"],
        fault=_plugin_on_path,
        after=_no_plugin_ran,
    ),
    Case(
        "disk full while saving a checkpoint, as torch reports it",
        TRAIN,
        lambda e: e.opts(out=os.path.join(e.tmp, "full2")),
        lambda e: [os.path.join(e.tmp, "full2", "checkpoint_0001.pth"), "No space left"],
        forbidden=("enforce fail", "RuntimeError"),
        fault=disk_full_as_torch_sees_it,
        after=lambda e: _no_temps(os.path.join(e.tmp, "full2")),
    ),
    Case(
        "export --output on a full disk (TorchScript)",
        "export",
        lambda e: _exporting(e, os.path.join(e.tmp, "exp", "m.pt")),
        lambda e: [os.path.join(e.tmp, "exp", "m.pt"), "No space left"],
        fault=disk_full_as_torch_sees_it,
        after=lambda e: _no_temps(os.path.join(e.tmp, "exp")),
    ),
    Case(
        "export --output on an unwritable path",
        "export",
        lambda e: _exporting(e, os.path.join(_readonly_dir(e), "m.pt")),
        lambda e: ["m.pt", ("not permitted", "Permission denied"), "writable"],
    ),
    Case(
        "an empty config file",
        TRAIN,
        lambda e: ["--config-file", _text_file(e, "empty.yml", "")] + e.opts(),
        lambda e: ["empty.yml", "is empty", "defaults"],
    ),
    Case(
        "a yml key given twice",
        TRAIN,
        lambda e: ["--config-file", _text_file(e, "twice.yml", "SEED: 1\nSEED: 2\n")] + e.opts(),
        lambda e: ["twice.yml", "SEED", "twice", "lines 1 and 2"],
    ),
    Case(
        "--config-file naming a folder",
        TRAIN,
        lambda e: ["--config-file", e.run] + e.opts(),
        lambda e: [e.run, "is a folder", "config.yaml"],
        forbidden=("not found",),
    ),
    Case(
        "SOLVER.BASE_LR -0.1 (the fix offered is a working lr, not 0.0)",
        TRAIN,
        lambda e: e.opts() + ["SOLVER.BASE_LR", "-0.1"],
        lambda e: ["SOLVER.BASE_LR is -0.1", "e.g. SOLVER.BASE_LR 0.01"],
        forbidden=("BASE_LR 0.0)",),
    ),
    Case(
        "SOLVER.BASE_LR 0 (valid, but trains nothing)",
        TRAIN,
        lambda e: (
            ["--no-progress"]
            + e.opts(out=os.path.join(e.tmp, "lr0"))
            + ["SOLVER.BASE_LR", "0", "SOLVER.MAX_EPOCHS", "1", "SOLVER.STEPS", "[]"]
        ),
        lambda e: ["SOLVER.BASE_LR is 0: the weights will not change"],
        tolerated=True,
    ),
    Case(
        "an upper-case .JPG in a Market-style folder",
        "dataset_stats",
        lambda e: ["market1501", "--root", e.market_variant("upper", _one_upper_case_jpg)],
        lambda e: [f"| train   | {_train_images(e):>6} |"],
        tolerated=True,
    ),
    Case(
        "an MSMT17 list saved with a UTF-8 byte-order mark",
        "dataset_stats",
        lambda e: ["msmt17", "--root", _msmt_with_bom(e)],
        lambda e: [f"| train   | {10:>6} |"],
        tolerated=True,
    ),
    Case(
        "weights full of NaN",
        "test_net",
        lambda e: _testing(e, _nan_weights(e)),
        lambda e: ["diverged.pth", "NaN"],
        forbidden=("g_feats",),
    ),
    Case(
        "a plain pickle holding objects as weights",
        "test_net",
        lambda e: _testing(e, _plain_pickle(e)),
        lambda e: ["weights.pkl", "plain Python pickle", "run code"],
        forbidden=("corrupt",),
    ),
    Case(
        "<root>/market1501 is a file",
        TRAIN,
        lambda e: e.opts(root=_market_is_a_file(e), out=os.path.join(e.tmp, "mf")),
        lambda e: [os.path.join(e.tmp, "fileroot", "market1501"), "is a file"],
        forbidden=("folder not found",),
    ),
    Case(
        "OUTPUT_DIR ''",
        TRAIN,
        lambda e: e.opts()[:-1] + [""],
        lambda e: ["OUTPUT_DIR is empty", "OUTPUT_DIR output/"],
    ),
    Case(
        "visualize_ranks --num-queries -1",
        "visualize_ranks",
        lambda e: (
            ["--num-queries", "-1", "--no-progress"]
            + e.opts()
            + ["MODEL.WEIGHTS", os.path.join(e.run, M)]
        ),
        lambda e: ["--num-queries", "-1", ">= 1"],
        forbidden=("Sample larger",),
    ),
]


@pytest.fixture(scope="module")
def earlier_run(market_root, tmp_path_factory):
    """A finished 2-epoch training run: config, run record, checkpoints, weights, metrics."""
    out = str(tmp_path_factory.mktemp("earlier") / "run")
    code = run_tool(
        TRAIN,
        [
            "--no-progress",
            *TINY_OPTS,
            "DATASETS.ROOT",
            market_root,
            "OUTPUT_DIR",
            out,
            "SOLVER.KEEP_CHECKPOINTS",
            "2",
        ],
    )
    assert code.code == 0, code
    for name in ("config.yaml", "run.json", "checkpoint_0002.pth", M, "metrics.json", "log.txt"):
        assert os.path.isfile(os.path.join(out, name)), name
    return out


def _matches(line: str, needle: Needle) -> bool:
    return any(n in line for n in ((needle,) if isinstance(needle, str) else needle))


def _verdict(case, env, out, lines, text):
    """clean / traceback / silent / unclear for one case's run, with the lines to show."""
    if out.traceback or "Traceback" in out.stderr:
        return "traceback", lines, text
    if case.tolerated:
        said = out.stdout + out.stderr
        ok = out.code == 0 and all(_matches(said, n) for n in case.needles(env))
        verdict = "clean" if ok else "silent" if out.code == 0 else "unclear"
        lines = [ln for ln in said.splitlines() if ln.strip()]
        text = "\n".join(lines[-5:])
    elif out.code == 0:
        verdict = "silent"
    elif (
        out.code == 2
        and len(lines) == 1
        and lines[0].startswith("error: ")
        and all(_matches(lines[0], n) for n in case.needles(env))
        and not any(f in text for f in case.forbidden)
    ):
        verdict = "clean"
    else:
        verdict = "unclear"
    if verdict == "clean" and case.after:
        try:
            case.after(env)
        except AssertionError as e:
            verdict = "unclear"
            out.traceback = f"after-check: {e}"
    return verdict, lines, text


def test_catalogue(earlier_run, market_root, tmp_path):
    env = Env(earlier_run, market_root, str(tmp_path))
    _TMP[:] = [str(tmp_path)]
    locked = os.path.join(str(tmp_path), "locked")
    os.makedirs(locked)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from reidbox.utils.run_folder import "
            "acquire_lock; acquire_lock(sys.argv[1]); print('ready', flush=True); time.sleep(600)",
            locked,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert holder.stdout.readline().strip() == "ready"
    env.extra.update(locked=locked, holder_pid=str(holder.pid))
    before = _snapshot(earlier_run)
    counts = dict(tried=0, clean=0, traceback=0, silent=0, unclear=0, data_lost=0)
    kinds = dict(refused=0, tolerated=0)
    failures: List[str] = []
    try:
        for case in CASES:
            counts["tried"] += 1
            kinds["tolerated" if case.tolerated else "refused"] += 1
            t0 = time.perf_counter()
            out = run_tool(case.tool, case.argv(env), case.fault)
            lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
            text = "\n".join(lines)
            now = _snapshot(earlier_run)
            lost = any(now.get(k) != v for k, v in before.items())  # new files may appear
            if lost:
                counts["data_lost"] += 1
                before = now  # report each loss once
            verdict, lines, text = _verdict(case, env, out, lines, text)
            counts[verdict] += 1
            shown = lines[-1] if lines else out.traceback or "(nothing)"
            if case.tolerated:
                shown = next(
                    (ln for ln in lines if any(_matches(ln, n) for n in case.needles(env))), shown
                )
            print(
                f"{verdict:9s}{' LOST' if lost else ''} {time.perf_counter() - t0:5.1f}s "
                f"{'tolerated' if case.tolerated else 'refused'}: {case.kind}: {shown}"
            )
            if verdict != "clean" or lost:
                failures.append(
                    f"{case.kind}: {verdict}{' + data lost' if lost else ''}, "
                    f"exit {out.code}: {text or out.traceback}"
                )
    finally:
        holder.kill()
        holder.wait()
    print(
        "catalogue: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" ({kinds['refused']} refused, {kinds['tolerated']} tolerated)"
    )
    assert not failures, "\n".join(failures)


def test_catalogue_covers_every_kind_of_the_issue():
    kinds = " | ".join(c.kind for c in CASES)
    for words in (
        "NUM_INSTANCES 0",
        "IMS_PER_BATCH 0",
        "MAX_EPOCHS 0",
        "under a file",
        "read-only",
        "disk full",
        "another architecture",
        "identity count",
        "export --output",
        "visualize_ranks --out",
        "collect_results --out",
        "empty gallery",
        "1 identity",
        "MAX_EPOCHS -1",
        "export without weights",
        "variant=detected",
        "twice in a chain",
        "without its keys",
        "empty training split",
        "PNG",
        "non-UTF-8",
        "invalid metrics.json",
        "unsafe checkpoint",
        "random bytes",
        "locked",
        "without --resume",
        "--overwrite with --resume",
        "MODEL.WEIGHTS it starts from",
        "no config at all",
        "several lines",
        "PLUGINS",
        "as torch reports it",
        "unwritable path",
        "empty config file",
        "given twice",
        "naming a folder",
        "BASE_LR 0",
        "upper-case .JPG",
        "byte-order mark",
        "NaN",
        "plain pickle",
        "is a file",
        "OUTPUT_DIR ''",
        "--num-queries -1",
    ):
        assert words in kinds, words


def test_earlier_run_record_lists_its_checkpoints(earlier_run):
    with open(os.path.join(earlier_run, "run.json")) as f:
        assert json.load(f)["checkpoints"] == ["checkpoint_0001.pth", "checkpoint_0002.pth"]
