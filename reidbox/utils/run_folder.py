"""What keeps a run folder (``OUTPUT_DIR``) whole: its file names, lock, run record, stale temps.

The low floor of the run folder's owner (:mod:`reidbox.engine.run_folder`: :class:`RunFolder`,
``StartMode``, the one rule that says whether a folder holds this config's run). The file
names live here, the one place they are spelled, so every floor from ``config`` up can name
them (``save_config`` writes :data:`CONFIG_FILE`, result tables read :data:`METRICS_FILE`).

- ``run.lock``: held (a POSIX record lock, ``fcntl.lockf``) by the process training into the
  folder; a second run there stops with one line naming the holder. The lock belongs to that
  one process: its forked data-loader workers do not inherit it (an ``flock`` they would share,
  and orphaned workers kept a killed run's folder locked), and the kernel drops it when the
  process dies (even by SIGKILL), so a rerun right after a kill takes the folder over.
- ``run.json``: the run record, ``run_id`` plus the checkpoints that run wrote. Checkpoints
  carry the same ``run_id``; pruning and ``--resume`` only touch the run's own files.
- ``*.tmp.<pid>.*``: temporary files of atomic writes; those of dead processes are removed
  when the next run starts.
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import glob
import json
import logging
import os
import re
import signal
import socket
import sys
import uuid
from typing import Any, Dict, List, Optional, Sequence

from ..errors import InputError, UserError
from .misc import write_json

logger = logging.getLogger(__name__)

# The files of a run folder (docs/run_folders.md says what each is).
CONFIG_FILE = "config.yaml"  # the merged config, re-loadable with --config-file
FINAL_WEIGHTS = "model_final.pth"  # {"model", "num_classes"} after the last epoch
METRICS_FILE = "metrics.json"  # the run's result: the final evaluation of FINAL_WEIGHTS
LOG_FILE = "log.txt"
LAST_GOOD = "last_good{}.pth"  # the newest finite state on a NaN/Inf loss ({}: _rank<r>)
TB_DIR = "tb"  # TensorBoard events
EVAL_DIR = "eval"  # test_net results, one folder per setting
LOCK_FILE = "run.lock"
RUN_RECORD = "run.json"
_TEMP = re.compile(r"\.tmp\.(\d+)(\.[^/]*)?$")
_held: Dict[str, int] = {}  # real path of a locked folder -> fd held open by this process


class RunFolderError(UserError, ValueError):
    """The output folder cannot be used (locked by another run, not writable, ...)."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _describe(info: Dict[str, Any]) -> str:
    cmd = " ".join(info.get("argv") or [])
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')}"
        + (f" ({cmd})" if cmd else "")
        + f" since {info.get('started', '?')}"
    )


def _holder_gone(info: Dict[str, Any]) -> bool:
    """Whether the lock file names a process of this machine that has ended (or is a zombie
    whose lock the kernel is dropping)."""
    pid = info.get("pid")
    if not isinstance(pid, int) or info.get("host") != socket.gethostname():
        return False
    if not pid_alive(pid):
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _read_info(fd: int) -> Dict[str, Any]:
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode("utf-8") or "{}")
    except (ValueError, OSError):
        return {}
    return info if isinstance(info, dict) else {}


#: How long a run waits for a lock whose recorded holder has ended (its exit still under way).
DEAD_HOLDER_WAIT_S = 15.0


def acquire_lock(folder: str, dead_holder_wait: Optional[float] = None) -> None:
    """Lock ``folder`` for this process (re-entrant); raise :class:`RunFolderError` if another
    live process holds it. A lock whose recorded holder has ended is waited for (up to
    ``dead_holder_wait`` seconds) and then taken over; the message never names a dead process
    as the folder's user."""
    import fcntl
    import time

    real = os.path.realpath(folder)
    if real in _held:
        return
    path = os.path.join(folder, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunFolderError(
            f"cannot create the lock file {path}: {e.strerror}; choose a writable OUTPUT_DIR"
        ) from None
    wait = DEAD_HOLDER_WAIT_S if dead_holder_wait is None else dead_holder_wait
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
        info = _read_info(fd)
        if _holder_gone(info) and time.monotonic() < deadline:
            time.sleep(0.2)  # the holder died: the kernel is releasing what it held
            continue
        os.close(fd)
        if _holder_gone(info):
            raise RunFolderError(
                f"OUTPUT_DIR {folder} is still locked although the run that locked it "
                f"(pid {info.get('pid')}, since {info.get('started', '?')}) has ended: "
                f"another process still holds {path}; find it with `fuser {path}`, "
                "stop it, or choose another OUTPUT_DIR"
            ) from None
        raise RunFolderError(
            f"OUTPUT_DIR {folder} is in use by {_describe(info)}; wait for it to finish, stop "
            "it, or choose another OUTPUT_DIR"
        ) from None
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _now(),
        "argv": [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv else [],
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
    _held[real] = fd


def release_lock(folder: str) -> None:
    """Release this process's lock on ``folder`` (also released when the process ends)."""
    fd = _held.pop(os.path.realpath(folder), None)
    if fd is not None:
        os.close(fd)


def remove_stale_temps(folder: str) -> List[str]:
    """Remove ``*.tmp.<pid>*`` files under ``folder`` (two levels) whose writer is dead."""
    removed = []
    for pattern in ("*.tmp.*", "*/*.tmp.*"):
        for path in glob.glob(os.path.join(folder, pattern)):
            m = _TEMP.search(path)
            if m and os.path.isfile(path) and not pid_alive(int(m.group(1))):
                try:
                    os.remove(path)
                    removed.append(path)
                except OSError:
                    pass
    if removed:
        logger.info(
            "removed %d temporary file(s) left by killed writers: %s",
            len(removed),
            ", ".join(os.path.basename(p) for p in removed),
        )
    return removed


# What a training run leaves that is worth keeping: a later run without ``--resume`` must not
# replace it unless told to (``--overwrite``), since the names repeat from run to run.
RESULT_PATTERNS = (FINAL_WEIGHTS, METRICS_FILE, "checkpoint_*.pth", LAST_GOOD.format("*"))
# Everything a training run writes into its folder (``--overwrite`` removes these and only these;
# ``eval/`` holds test_net results of the replaced weights, stale once they are gone).
RUN_PATTERNS = RESULT_PATTERNS + ("cmc_*.png", RUN_RECORD, CONFIG_FILE, LOG_FILE, TB_DIR, EVAL_DIR)


def earlier_results(folder: str) -> List[str]:
    """The result files (:data:`RESULT_PATTERNS`) an earlier run left in ``folder``, sorted."""
    found = set()
    for pattern in RESULT_PATTERNS:
        found.update(p for p in glob.glob(os.path.join(folder, pattern)) if os.path.isfile(p))
    return sorted(os.path.basename(p) for p in found)


def check_fresh_folder(folder: str) -> None:
    """Refuse (:class:`RunFolderError`) to start a new run in a folder that holds an earlier
    run's results; the message says what is there and the three ways on."""
    names = earlier_results(folder)
    if not names:
        return
    record = read_run_record(folder) or {}
    what = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    run = f"run {record['run_id']} (started {record.get('started', '?')})" if record else "a run"
    raise RunFolderError(
        f"OUTPUT_DIR {folder} holds the results of {run}: {what}; continue that run with "
        "--resume, choose another OUTPUT_DIR, or pass --overwrite to delete its files and "
        "train anew there"
    )


def check_overwrite(folder: str, weights: str) -> None:
    """``--overwrite`` must not delete the file the new run starts from (``MODEL.WEIGHTS``):
    the new config.yaml would name a file that is then the new run's own output."""
    if not weights or not os.path.isfile(weights):
        return
    if any(os.path.samefile(os.path.join(folder, n), weights) for n in earlier_results(folder)):
        raise RunFolderError(
            f"--overwrite would delete MODEL.WEIGHTS {weights}, the file this run starts from "
            f"(it lies in OUTPUT_DIR {folder}); copy it out of that folder and point "
            "MODEL.WEIGHTS at the copy, or choose another OUTPUT_DIR"
        )


# What a run that died before its first checkpoint leaves: nothing worth keeping, and a new
# run in the folder must not append to its log or mix its TensorBoard curves with the new ones.
DEAD_RUN_PATTERNS = (RUN_RECORD, CONFIG_FILE, LOG_FILE, TB_DIR)


def clear_run_files(folder: str, patterns: Sequence[str] = RUN_PATTERNS) -> List[str]:
    """Delete what an earlier training run wrote into ``folder`` (``patterns``, by default
    :data:`RUN_PATTERNS`; never the lock or files of other names); returns the names removed."""
    import shutil

    removed = []
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(folder, pattern))):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(os.path.basename(path))
    if removed:
        logger.warning("removed the earlier run's files from %s: %s", folder, ", ".join(removed))
    return removed


def read_metrics(path: str) -> Any:
    """The one reader of ``metrics.json``: ``path`` is the file or the folder holding it. A file
    that is not JSON is an :class:`~reidbox.errors.InputError` naming it."""
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(
            f"{path} is not valid JSON ({e}); re-run the evaluation that "
            "wrote it, or leave that folder out"
        ) from None


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def read_run_record(folder: str) -> Optional[Dict[str, Any]]:
    """``run.json`` of ``folder``, or None when there is none (or it is unreadable)."""
    path = os.path.join(folder, RUN_RECORD)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        logger.warning("ignoring unreadable run record %s: %s", path, e)
        return None
    return record if isinstance(record, dict) and record.get("run_id") else None


def write_run_record(folder: str, record: Dict[str, Any]) -> None:
    write_json(record, os.path.join(folder, RUN_RECORD))


def start_run_record(
    folder: str, resume: bool, loaded: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """Write and return the record of the run about to train into ``folder``: on resume the
    folder's own record (same ``run_id`` and checkpoint list); else a new run id, or, resuming
    a folder without a record, the id of the checkpoint ``loaded`` from it."""
    old = read_run_record(folder) if resume else None
    loaded_id = (loaded or {}).get("run_id")
    if old:
        record = dict(old, resumed=_now())
    else:
        record = {"run_id": (loaded_id if resume else None) or new_run_id(), "started": _now()}
    own = record.setdefault("checkpoints", [])
    if loaded and "_path" in loaded and loaded_id in (None, record["run_id"]):
        name = os.path.basename(loaded["_path"])
        if name not in own:
            own.append(name)
    record["host"], record["pid"] = socket.gethostname(), os.getpid()
    write_run_record(folder, record)
    return record


def die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent (the torchrun agent) dies,
    so orphaned workers stop writing into OUTPUT_DIR. A no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGKILL)
