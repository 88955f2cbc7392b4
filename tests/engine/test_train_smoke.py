import json
import os

import torch

from reidbox.config import load_config
from reidbox.engine import runner
from reidbox.engine.trainer import HookBase


def test_two_epoch_train_then_test(tiny_opts):
    cfg = load_config(None, tiny_opts)
    record = runner.train(cfg, progress=False)
    out = cfg.OUTPUT_DIR
    for name in ("config.yaml", "metrics.json", "model_final.pth", "log.txt"):
        assert os.path.isfile(os.path.join(out, name)), name
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    for key in ("mAP", "rank1", "rank5", "rank10", "mINP"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics == json.loads(json.dumps(record))
    assert metrics["per_dataset"]["market1501"]["num_query"] == 10
    state = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert "model" in state and state["num_classes"] == 6
    # test_net path: the saved weights reproduce the numbers of the training run
    test_cfg = load_config(None, tiny_opts[:-1] + [tiny_opts[-1] + "_test"])
    again = runner.test(test_cfg, weights=os.path.join(out, "model_final.pth"), progress=False)
    assert abs(again["mAP"] - metrics["mAP"]) < 1e-6
    assert again["evaluation"]["protocol"] == "market1501"
    evaluated = runner.eval_dir(test_cfg, os.path.join(out, "model_final.pth"))
    assert json.load(open(os.path.join(evaluated, "metrics.json")))["mAP"] == again["mAP"]
    with open(os.path.join(evaluated, "ranklist_market1501.csv")) as f:
        rows = f.read().splitlines()
    assert (
        rows[0].startswith("query_index,query,") and len(rows) == 1 + 10 * 10
    )  # 10 queries x top-10
    # re-ranking from the config changes the scoring path and is recorded
    rr_cfg = load_config(
        None,
        tiny_opts[:-1]
        + [
            tiny_opts[-1] + "_rr",
            "TEST.RERANK.ENABLED",
            "True",
            "TEST.RERANK.K1",
            "4",
            "TEST.RERANK.K2",
            "2",
        ],
    )
    rr = runner.test(rr_cfg, weights=os.path.join(out, "model_final.pth"), progress=False)
    assert rr["evaluation"]["rerank"]["k1"] == 4 and 0 <= rr["mAP"] <= 1


class _StopAfter(HookBase):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def after_epoch(self) -> None:
        if self.trainer.epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def test_resume_gives_same_final_weights(tiny_opts, tmp_path):
    full = load_config(None, tiny_opts[:-1] + [str(tmp_path / "full")])
    runner.train(full, progress=False)
    part = load_config(None, tiny_opts[:-1] + [str(tmp_path / "part")])
    try:
        runner.train(part, extra_hooks=[_StopAfter(1)], progress=False)
        raise AssertionError("the run should have been interrupted")
    except KeyboardInterrupt:
        pass
    assert not os.path.exists(tmp_path / "part" / "model_final.pth")
    runner.train(part, resume=True, progress=False)
    a = torch.load(tmp_path / "full" / "model_final.pth", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "model_final.pth", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
