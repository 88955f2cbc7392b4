"""Run folders: checkpoint pruning by run, the folder lock, temp files, last_good, eval folders."""

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from reidbox.config import load_config
from reidbox.engine import runner
from reidbox.utils import distributed as du
from reidbox.utils import run_folder
from reidbox.utils.checkpoint import Checkpointer, NonFiniteStateError, atomic_save, load_file
from reidbox.utils.misc import write_json
from tests.conftest import TINY_OPTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _state(epoch, value=1.0):
    return {"epoch": epoch, "model": {"w": torch.full((2,), value)}}


def _names(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith("checkpoint_"))


def test_pruning_keeps_the_new_file_and_ignores_other_runs(tmp_path):
    d = str(tmp_path)
    atomic_save(dict(_state(3), run_id="other"), os.path.join(d, "checkpoint_0003.pth"))
    with open(os.path.join(d, "checkpoint_0005.pth"), "wb") as f:
        f.write(b"PK\x03\x04 truncated")  # an unreadable leftover of some run
    ck = Checkpointer(d, keep=1)
    ck.bind(run_folder.start_run_record(d, resume=False))
    ck.save(1, _state(1))
    assert "checkpoint_0001.pth" in _names(d)  # was deleted: higher numbers looked newer
    ck.save(2, _state(2))
    assert _names(d) == ["checkpoint_0002.pth", "checkpoint_0003.pth", "checkpoint_0005.pth"]
    assert json.load(open(tmp_path / "run.json"))["checkpoints"] == ["checkpoint_0002.pth"]
    assert load_file(ck.path(2))["run_id"] == ck.run_id
    # resume: the other run's newer file and the unreadable one are passed over
    again = Checkpointer(d, keep=1, run_id=ck.run_id)
    assert again.load_latest()["_path"].endswith("checkpoint_0002.pth")


def test_resume_keeps_the_run_id_and_prunes_across_restarts(tmp_path):
    d = str(tmp_path)
    ck = Checkpointer(d, keep=2)
    ck.bind(run_folder.start_run_record(d, resume=False))
    for e in (1, 2):
        ck.save(e, _state(e))
    record = run_folder.start_run_record(d, resume=True)
    assert record["run_id"] == ck.run_id
    ck2 = Checkpointer(d, keep=2)
    ck2.bind(record)
    ck2.save(3, _state(3))
    assert _names(d) == ["checkpoint_0002.pth", "checkpoint_0003.pth"]
    assert run_folder.start_run_record(d, resume=False)["run_id"] != ck.run_id


def test_nonfinite_state_is_not_saved(tmp_path):
    ck = Checkpointer(str(tmp_path))
    with pytest.raises(NonFiniteStateError, match="model.w"):
        ck.save(1, _state(1, float("nan")))
    assert _names(str(tmp_path)) == []


class _FakeTrainer:
    def __init__(self, value):
        self.value = value

    def state_dict(self):
        return dict(_state(3, self.value), global_step=30)

    def last_finite_state(self):  # the trainer's copy at its last clean loss read
        return self.state_dict()


def test_last_good_falls_back_to_the_newest_finite_checkpoint(tmp_path):
    cfg = load_config(None, ["OUTPUT_DIR", str(tmp_path)])
    ck = Checkpointer(str(tmp_path), keep=3)
    ck.bind(run_folder.start_run_record(str(tmp_path), resume=False))
    ck.save(1, dict(_state(1, 1.0), global_step=10))
    ck.save(2, dict(_state(2, 2.0), global_step=20))
    path = str(tmp_path / "last_good.pth")
    # the trainer's weights already went bad (the loss is read every LOG_PERIOD steps)
    assert "checkpoint_0002.pth" in runner.save_last_good(cfg, _FakeTrainer(float("inf")), ck, path)
    saved = load_file(path)
    assert saved["global_step"] == 20 and torch.equal(saved["model"]["w"], torch.full((2,), 2.0))
    # still finite: the trainer's own state is the newest good one
    assert runner.save_last_good(cfg, _FakeTrainer(5.0), ck, path) == "global step 30"
    assert load_file(path)["model"]["w"][0] == 5.0


def test_lock_refuses_a_second_run_and_takes_over_a_dead_ones(tmp_path):
    d = str(tmp_path / "out")
    os.makedirs(d)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from reidbox.utils.run_folder import "
            "acquire_lock; acquire_lock(sys.argv[1]); print('ready', flush=True); time.sleep(600)",
            d,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(run_folder.RunFolderError, match=f"in use by pid {holder.pid} on "):
            run_folder.acquire_lock(d)
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without any cleanup
        holder.wait()
    run_folder.acquire_lock(d)  # the stale lock is taken over
    try:
        assert json.load(open(os.path.join(d, "run.lock")))["pid"] == os.getpid()
    finally:
        run_folder.release_lock(d)


def _holder_with_a_worker(folder, fake_pid=None):
    """A process that locks ``folder``, forks a child that lives on (as a data-loader worker
    does, with the lock file's descriptor inherited) and optionally records ``fake_pid``."""
    code = (
        "import json, os, sys, time\n"
        "from reidbox.utils import run_folder\n"
        "run_folder.acquire_lock(sys.argv[1])\n"
        "if len(sys.argv) > 2:\n"
        "    fd = run_folder._held[os.path.realpath(sys.argv[1])]\n"
        "    info = json.loads(os.pread(fd, 65536, 0))\n"
        "    info['pid'] = int(sys.argv[2])\n"
        "    os.ftruncate(fd, 0); os.pwrite(fd, json.dumps(info).encode(), 0)\n"
        "if os.fork() == 0:\n"
        "    time.sleep(600); os._exit(0)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    argv = [sys.executable, "-c", code, folder] + ([str(fake_pid)] if fake_pid else [])
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert p.stdout.readline().strip() == "ready"
    kids = [int(c) for c in os.listdir("/proc") if c.isdigit() and _ppid(int(c)) == p.pid]
    return p, kids


def _kill_all(p, kids):
    for pid in [p.pid] + kids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_killed_runs_orphaned_workers_do_not_keep_its_folder(tmp_path):
    d = str(tmp_path / "out")
    os.makedirs(d)
    holder, kids = _holder_with_a_worker(d)
    assert kids  # the "worker" outlives its parent below
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert run_folder.pid_alive(kids[0])
        t0 = time.time()
        run_folder.acquire_lock(d, dead_holder_wait=0)  # at once: the worker holds nothing
        assert time.time() - t0 < 1.0
        run_folder.release_lock(d)
    finally:
        _kill_all(holder, kids)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_rerun_right_after_sigkill_of_a_run_with_workers_proceeds(market_root, tmp_path):
    out = tmp_path / "killed"
    opts = TINY_OPTS + ["DATASETS.ROOT", market_root, "OUTPUT_DIR", str(out)]
    opts += ["DATALOADER.NUM_WORKERS", "2", "SOLVER.MAX_EPOCHS", "50", "SOLVER.STEPS", "[]"]
    train = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--no-progress"]
    p = subprocess.Popen(train + opts, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    workers = []
    while time.time() < deadline and not (workers and (out / "checkpoint_0001.pth").exists()):
        workers = [int(c) for c in os.listdir("/proc") if c.isdigit() and _ppid(int(c)) == p.pid]
        time.sleep(0.1)
    assert workers, "the run started no loader workers"
    p.send_signal(signal.SIGKILL)
    p.wait()
    try:
        orphans = [w for w in workers if run_folder.pid_alive(w) and not _zombie(w)]
        run_folder.acquire_lock(str(out), dead_holder_wait=0)  # at once, orphans or not
        run_folder.release_lock(str(out))
        print(f"{len(orphans)} orphaned loader workers alive when the folder was taken over")
        # the rerun at once, as a scheduler's retry: it must train, not report pid p as the user
        r = subprocess.run(
            train + opts + ["--resume", "SOLVER.MAX_EPOCHS", "2"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"pid {p.pid}" not in r.stderr
    finally:
        for w in workers:
            if run_folder.pid_alive(w) and not _zombie(w):
                os.kill(w, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_lock_left_with_a_dead_pid_never_names_that_pid_as_the_user(tmp_path):
    d = str(tmp_path / "out")
    os.makedirs(d)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder, kids = _holder_with_a_worker(d, fake_pid=dead.pid)
    try:
        t0 = time.time()
        with pytest.raises(run_folder.RunFolderError) as e:
            run_folder.acquire_lock(d, dead_holder_wait=0.6)
        assert time.time() - t0 >= 0.5  # it waited for the dead holder's exit first
        msg = str(e.value)
        assert "in use by" not in msg and f"pid {dead.pid}" in msg and "has ended" in msg
        assert "fuser" in msg
    finally:
        _kill_all(holder, kids)


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"checkpoint_0003.pth.tmp.{dead.pid}.x1y2"
    old_style = tmp_path / "sub" / f"model_final.pth.tmp.{dead.pid}"
    live = tmp_path / f"metrics.json.tmp.{os.getpid()}.abc"
    for p in (stale, old_style, live):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"partial")
    removed = run_folder.remove_stale_temps(str(tmp_path))
    assert sorted(removed) == sorted([str(stale), str(old_style)])
    assert live.exists()


def test_write_json_concurrent_writers_never_collide(tmp_path):
    path = str(tmp_path / "m.json")
    errors = []

    def writer(k):
        for i in range(150):
            try:
                write_json({"writer": k, "i": i, "pad": "x" * 2000}, path)
            except OSError as e:  # the shared ".tmp" name failed here
                errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert json.load(open(path))["pad"] == "x" * 2000
    assert os.listdir(tmp_path) == ["m.json"]


def test_test_net_writes_its_own_folder_not_over_the_training_results(tiny_opts):
    cfg = load_config(None, tiny_opts + ["SOLVER.MAX_EPOCHS", "1"])
    runner.train(cfg, progress=False)
    out = cfg.OUTPUT_DIR
    before = {
        f: open(os.path.join(out, f), "rb").read()
        for f in ("metrics.json", "config.yaml", "run.json")
    }
    weights = os.path.join(out, "model_final.pth")
    rr = load_config(
        None,
        tiny_opts + ["TEST.RERANK.ENABLED", "True", "TEST.RERANK.K1", "4", "TEST.RERANK.K2", "2"],
    )
    record = runner.test(rr, weights=weights, progress=False)
    for f, data in before.items():
        assert open(os.path.join(out, f), "rb").read() == data, f
    folder = runner.eval_dir(rr, weights)
    assert os.path.dirname(folder) == os.path.join(out, "eval")
    assert os.path.basename(folder).startswith("model_final_market1501_rerank_")
    written = json.load(open(os.path.join(folder, "metrics.json")))
    assert written["mAP"] == record["mAP"] and written["settings"]["rerank"] == dict(
        k1=4, k2=2, lambda_value=0.3
    )
    assert os.path.isfile(os.path.join(folder, "log.txt"))
    plain = load_config(None, tiny_opts)
    assert runner.eval_dir(plain, weights) != folder  # other settings, other folder


def _broadcast_worker(rank, init, queue):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[1].running_mean.fill_(float(rank + 1))  # BN statistics drift apart per rank
    du.broadcast_module_state(model)
    queue.put((rank, model[1].running_mean.tolist(), model[0].weight.sum().item()))
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_every_rank_takes_rank0s_buffers_before_the_final_evaluation(tmp_path):
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(
        _broadcast_worker, args=(f"file://{tmp_path}/init", queue), nprocs=2, start_method="spawn"
    )
    got = dict((r, (mean, w)) for r, mean, w in (queue.get(), queue.get()))
    assert got[0] == got[1] == ([1.0, 1.0], 4.0)


def _ddp(out, market_root, extra=()):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        os.path.join(ROOT, "tools", "train_net.py"),
        "--no-progress",
        *TINY_OPTS,
        "DATASETS.ROOT",
        market_root,
        "OUTPUT_DIR",
        str(out),
        *extra,
    ]
    return cmd, dict(os.environ, OMP_NUM_THREADS="1")


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_ddp_metrics_describe_the_saved_weights(market_root, tmp_path):
    """Without SyncBN each rank's BN statistics drift apart; the final evaluation must use the
    saved (rank 0) weights and buffers, so test_net on model_final.pth gives the same numbers."""
    out = tmp_path / "ddp"
    cmd, env = _ddp(out, market_root, ["MODEL.SYNC_BN", "False"])
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    trained = json.load(open(out / "metrics.json"))
    cfg = load_config(None, TINY_OPTS + ["DATASETS.ROOT", market_root, "OUTPUT_DIR", str(out)])
    again = runner.test(cfg, weights=str(out / "model_final.pth"), progress=False)
    for k in ("mAP", "rank1", "mINP"):
        assert abs(trained[k] - again[k]) < 1e-6, (k, trained[k], again[k])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_torchrun_workers_stop_when_the_agent_is_killed(market_root, tmp_path):
    out = tmp_path / "orphans"
    cmd, env = _ddp(out, market_root, ["SOLVER.MAX_EPOCHS", "50"])
    agent = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint_0001.pth").exists():
        time.sleep(0.1)
    assert (out / "checkpoint_0001.pth").exists()
    workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == agent.pid]
    assert len(workers) == 2
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    try:
        deadline = time.time() + 30
        while time.time() < deadline and any(
            run_folder.pid_alive(w) and not _zombie(w) for w in workers
        ):
            time.sleep(0.1)
        assert not any(run_folder.pid_alive(w) and not _zombie(w) for w in workers)
    finally:
        for w in workers:  # never leave a test's orphans running
            if run_folder.pid_alive(w) and _ppid(w) != -1:
                os.kill(w, signal.SIGKILL)
    # nobody holds the folder any more (the kernel drops a killed holder's lock as its exit
    # completes, which can trail the moment its pid reads as gone by a little)
    deadline = time.time() + 30
    while True:
        try:
            run_folder.acquire_lock(str(out))
            break
        except run_folder.RunFolderError:
            if time.time() > deadline:
                raise AssertionError(f"still locked: {_lock_holders(str(out))}") from None
            time.sleep(0.2)
    run_folder.release_lock(str(out))


def _lock_holders(folder):
    """Processes with ``folder/run.lock`` open: ``pid: command line``."""
    target, found = os.path.realpath(os.path.join(folder, run_folder.LOCK_FILE)), []
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.path.realpath(fd) == target:
                pid = fd.split("/")[2]
                cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")
                found.append(f"{pid} (parent {_ppid(int(pid))}): {cmd[:120]}")
        except OSError:
            continue
    return found


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _fake_finished_run(folder):
    os.makedirs(folder, exist_ok=True)
    atomic_save({"model": {}, "num_classes": 4}, os.path.join(folder, "model_final.pth"))
    write_json({"mAP": 0.5}, os.path.join(folder, "metrics.json"))
    write_json({"run_id": "earlier123456", "started": "x"}, os.path.join(folder, "run.json"))


def test_a_new_run_is_refused_where_an_earlier_one_left_results(tiny_opts):
    out = tiny_opts[-1]
    _fake_finished_run(out)
    before = {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)}
    with pytest.raises(run_folder.RunFolderError, match="earlier123456.*--resume.*--overwrite"):
        runner.train(load_config(None, tiny_opts), progress=False)
    run_folder.release_lock(out)
    assert {f: open(os.path.join(out, f), "rb").read() for f in before} == before
    assert sorted(os.listdir(out)) == sorted(list(before) + [run_folder.LOCK_FILE])


def test_a_run_that_died_before_its_first_checkpoint_is_trained_over(tiny_opts):
    # nothing worth protecting: its leftovers go (no appended log, no mixed TensorBoard
    # curves); test_net results in eval/ (of other weights) stay
    out = tiny_opts[-1]
    os.makedirs(os.path.join(out, "tb"))
    open(os.path.join(out, "tb", "events.out.tfevents.dead"), "w").write("x")
    write_json({"run_id": "diedearly", "started": "x"}, os.path.join(out, "run.json"))
    open(os.path.join(out, "log.txt"), "w").write("KILLED IN EPOCH 1\n")
    write_json({"mAP": 0.2}, os.path.join(out, "eval", "other_weights_abc", "metrics.json"))
    assert run_folder.earlier_results(out) == []
    cfg = load_config(None, tiny_opts + ["SOLVER.MAX_EPOCHS", "1", "SOLVER.STEPS", "[]"])
    runner.train(cfg, progress=False)
    run_folder.release_lock(out)
    assert "KILLED" not in open(os.path.join(out, "log.txt")).read()
    assert "events.out.tfevents.dead" not in os.listdir(os.path.join(out, "tb"))
    assert json.load(open(os.path.join(out, "run.json")))["run_id"] != "diedearly"
    assert os.path.isfile(os.path.join(out, "eval", "other_weights_abc", "metrics.json"))


def test_overwrite_refuses_to_delete_the_weights_it_starts_from(tmp_path):
    d = str(tmp_path)
    _fake_finished_run(d)
    with pytest.raises(run_folder.RunFolderError, match="would delete MODEL.WEIGHTS"):
        run_folder.check_overwrite(d, os.path.join(d, "model_final.pth"))
    run_folder.check_overwrite(d, "")  # no weights: nothing to protect
    elsewhere = str(tmp_path / "copy" / "w.pth")
    atomic_save({"model": {}}, elsewhere)
    run_folder.check_overwrite(d, elsewhere)


def test_overwrite_replaces_the_earlier_run_and_keeps_foreign_files(tiny_opts):
    out = tiny_opts[-1]
    _fake_finished_run(out)
    for name in ("checkpoint_0007.pth", "last_good.pth", "cmc_market1501.png"):
        open(os.path.join(out, name), "wb").write(b"old")
    os.makedirs(os.path.join(out, "eval", "model_final_market1501_abc"))
    write_json({"mAP": 0.1}, os.path.join(out, "eval", "model_final_market1501_abc", "m.json"))
    open(os.path.join(out, "notes.txt"), "w").write("mine")
    open(os.path.join(out, "log.txt"), "w").write("LOG OF THE EARLIER RUN\n")
    cfg = load_config(None, tiny_opts + ["SOLVER.MAX_EPOCHS", "1", "SOLVER.STEPS", "[]"])
    runner.train(cfg, progress=False, overwrite=True)
    run_folder.release_lock(out)
    names = set(os.listdir(out))
    assert {"notes.txt", "model_final.pth", "metrics.json", "checkpoint_0001.pth"} <= names
    assert not names & {"checkpoint_0007.pth", "last_good.pth", "eval"}, names
    record = json.load(open(os.path.join(out, "run.json")))
    assert record["run_id"] != "earlier123456" and record["checkpoints"] == ["checkpoint_0001.pth"]
    assert torch.load(os.path.join(out, "model_final.pth"))["model"]  # the new weights
    assert "LOG OF THE EARLIER RUN" not in open(os.path.join(out, "log.txt")).read()


def test_file_names_are_spelled_only_by_the_run_folder():
    """``model_final.pth``, ``metrics.json`` and ``config.yaml`` are constants of
    reidbox/utils/run_folder.py (the run folder owner's low floor, so that config and
    visualization can name them too); every other module uses those constants."""
    import ast

    names = {"model_final.pth", "metrics.json", "config.yaml"}
    owner = os.path.join("reidbox", "utils", "run_folder.py")
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "reidbox")):
        for f in files:
            path = os.path.join(folder, f)
            rel = os.path.relpath(path, ROOT)
            if not f.endswith(".py") or rel == owner:
                continue
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                if isinstance(node, ast.Constant) and node.value in names:
                    found.append(f"{rel}:{node.lineno} {node.value!r}")
    assert not found, "use the constants of reidbox.utils.run_folder:\n" + "\n".join(found)


def test_resume_says_which_tensor_does_not_fit_from_the_load_report(tmp_path):
    from reidbox.engine.run_folder import resume_trainer
    from reidbox.utils.checkpoint import CheckpointError

    class _Trainer:
        unwrapped_model = torch.nn.Linear(2, 3)

    state = {"model": torch.nn.Linear(2, 2).state_dict(), "_path": "ck.pth"}
    with pytest.raises(
        CheckpointError, match=r"ck.pth does not fit this model \(shape mismatch: weight"
    ):
        resume_trainer(_Trainer(), state, Checkpointer(str(tmp_path)))
