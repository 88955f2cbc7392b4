"""Small helpers: seeding, device choice, JSON output."""

from __future__ import annotations

import errno
import json
import os
import random
import tempfile
from contextlib import contextmanager
from typing import IO, Any, Callable, Iterator, Optional

import numpy as np
import torch
from ..errors import InputError


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA device this machine lacks is a
    ``ValueError`` (one line naming what to use instead), not a CUDA traceback later."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(
            f"DEVICE {name!r} is not a torch device: use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"DEVICE {name} but this machine has no usable CUDA GPU: use "
                "DEVICE cpu (or auto, which picks a GPU only when there is one)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InputError(
                f"DEVICE {name} but this machine has {count} GPU(s) "
                f"(cuda:0..cuda:{count - 1}): use one of them, or DEVICE cpu"
            )
    return device


@contextmanager
def exclusive(lock_path: str, what: str = "") -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``lock_path`` (created if missing) for the
    ``with`` body, waiting for another holder to finish. Used where several processes (the
    ranks of one DDP job, two runs sharing a datasets folder) may build the same files: the
    first builds them under the lock, the others wait and then find them complete. A
    filesystem without locks (rare network mounts) runs the body unlocked."""
    import fcntl
    import logging

    fd = _open_lock(lock_path)  # None: no lock file here; writing will report the problem
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logging.getLogger(__name__).info(
                    "waiting for another process building %s", what or lock_path
                )
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # no locking on this filesystem
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing releases the lock


def _open_lock(lock_path: str) -> Optional[int]:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    except OSError:
        return None


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str, write: Callable[[IO], None], binary: bool = False) -> None:
    """Write ``path`` through ``write(f)`` on a temporary file in the same folder, then rename.

    The temporary name is unique per writer (``<name>.tmp.<pid>.<random>``), so concurrent
    writers never collide; it is removed if writing fails. Files left by a killed writer are
    removed by :func:`reidbox.utils.run_folder.remove_stale_temps` on the next run.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix=f"{os.path.basename(path)}.tmp.{os.getpid()}."
        )
    except OSError as e:  # name the file being written, not a folder or a temporary name
        raise OSError(e.errno, e.strerror or str(e), path) from None
    try:
        with os.fdopen(
            fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})
        ) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; honour the umask instead
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename != path:
            raise OSError(e.errno, e.strerror or str(e), path) from None  # name the file
        raise


_OS_FIXES = {
    errno.ENOSPC: "free disk space or choose another OUTPUT_DIR",
    errno.EDQUOT: "free disk space or choose another OUTPUT_DIR",
    errno.EROFS: "choose a writable folder",
    errno.EACCES: "choose a writable folder, or fix its permissions",
    errno.EPERM: "choose a writable folder, or fix its permissions",
    errno.EISDIR: "that is a folder: give a file name",
    errno.ENOTDIR: "a file is in the way: choose a path in a folder",
    errno.EEXIST: "a file is in the way: choose a path in a folder",
}


def describe_os_error(e: OSError) -> str:
    """``<path>: <what happened>; <what to do>`` for an I/O error, on one line."""
    fix = _OS_FIXES.get(e.errno or -1, "check the path")
    return f"{e.filename}: {e.strerror or e}; {fix}"


def check_output_file(path: str, option: str = "--out") -> str:
    """A file a tool is about to write: refuse a folder, or a parent that is a file."""
    if os.path.isdir(path):
        raise InputError(
            f"{option} {path} is an existing folder; give a file name "
            f"(e.g. {os.path.join(path, 'out')})"
        )
    _check_parent(path, option)
    return path


def check_output_dir(path: str, option: str = "--out") -> str:
    """A folder a tool is about to fill: refuse an existing file (or a file on the way)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{option} {path} is a file; give a folder to write into")
    _check_parent(path, option)
    return path


def _check_parent(path: str, option: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise InputError(
            f"{option} {path}: {parent} is a file, not a folder; choose a path in a folder"
        )


def atomic_write_bytes(data: Any, path: str) -> None:
    """Write bytes (or a buffer) to ``path`` atomically. The files torch writes (checkpoints,
    TorchScript, ONNX) are serialised into memory first and written here: torch itself turns a
    full disk or an unwritable path into a bare ``RuntimeError`` (or aborts the process), this
    gives the ``OSError`` that names the file."""
    atomic_write(path, lambda f: f.write(data), binary=True)


def write_json(obj: Any, path: str) -> None:
    """Write JSON atomically (unique temp file + rename)."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=True))


def write_text(text: str, path: str) -> None:
    """Write a text file atomically (unique temp file + rename)."""
    atomic_write(path, lambda f: f.write(text))


def count_parameters(params) -> int:
    """Elements in a module's parameters (or an iterable of tensors), each tensor once."""
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    return sum(p.numel() for p in {id(p): p for p in params}.values())


@contextmanager
def eval_mode(*modules: torch.nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block, then give every submodule back its own mode.

    Each submodule's ``training`` flag is restored as it was (a frozen teacher inside a training
    student stays in eval), also when the block raises. Gradients are untouched: add
    ``torch.no_grad()`` where none are wanted.
    """
    saved = [(m, m.training) for mod in modules for m in mod.modules()]
    try:
        for mod in modules:
            mod.eval()
        yield
    finally:
        for m, mode in saved:
            m.training = mode
