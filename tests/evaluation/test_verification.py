"""ROC / TPR@FPR over query-gallery pairs, streamed: against a brute force over the full matrix."""

import numpy as np
import pytest

from reidbox.evaluation.verification import verification_metrics
from reidbox.retrieval import pairwise_distance
from reidbox.retrieval.rank import junk_mask


def _problem(seed=0, m=60, n=700, d=16, ids=40):
    rng = np.random.default_rng(seed)
    cent = rng.normal(size=(ids, d))
    gp, qp = rng.integers(0, ids, n), rng.integers(0, ids, m)
    gf = cent[gp] + 0.9 * rng.normal(size=(n, d))
    qf = cent[qp] + 0.9 * rng.normal(size=(m, d))
    gp[:20] = -1  # Market junk: left out
    return qf, gf, qp, gp, rng.integers(0, 6, m), rng.integers(0, 6, n)


def _brute(qf, gf, qp, gp, qc, gc, metric, f, auc=False):
    D = pairwise_distance(qf, gf, metric).numpy().astype(np.float64)
    valid = ~junk_mask("market1501", qp, qc, gp, gc)
    same = qp[:, None] == gp[None, :]
    gen, imp = np.sort(D[valid & same]), np.sort(D[valid & ~same])
    # the largest threshold t ("accept d < t") whose impostor acceptance is at most f
    t = np.concatenate([imp, [np.inf]])
    fpr = np.searchsorted(imp, t, side="left") / len(imp)
    tpr = np.searchsorted(gen, t, side="left") / len(gen)
    best = tpr[fpr <= f].max()
    if not auc:
        return best, len(gen), len(imp)
    return np.mean(gen[:, None] < imp[None, :]) + 0.5 * np.mean(gen[:, None] == imp[None, :])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk", [7, 1024])
def test_tpr_at_fpr_equals_brute_force(metric, chunk):
    p = _problem()
    r = verification_metrics(*p, metric=metric, fprs=(1e-3, 1e-2, 0.1), chunk_size=chunk)
    for f, got in r.tpr_at_fpr.items():
        want, n_gen, n_imp = _brute(*p, metric, f)
        assert got == pytest.approx(want, abs=1e-12), f
    assert (r.num_genuine, r.num_impostor) == (n_gen, n_imp)
    assert r.auc == pytest.approx(
        _brute(*p, metric, 0, auc=True), abs=2e-3
    )  # binned above the kept tail
    assert np.all(np.diff(r.fpr) >= 0) and np.all(np.diff(r.tpr) >= 0)
    assert set(r.as_dict()) == {"TPR@FPR=1e-03", "TPR@FPR=1e-02", "TPR@FPR=1e-01", "ROC_AUC"}


def test_ties_at_the_threshold_are_rejected_together_and_errors():
    # quantised features: many impostor distances tie; a reported point never exceeds its FPR
    rng = np.random.default_rng(1)
    qf, gf = rng.integers(0, 3, (30, 3)).astype(float), rng.integers(0, 3, (200, 3)).astype(float)
    qp, gp = rng.integers(0, 5, 30), rng.integers(0, 5, 200)
    qc, gc = np.zeros(30, int), np.ones(200, int)
    r = verification_metrics(qf, gf, qp, gp, qc, gc, fprs=(0.01, 0.2))
    for f, got in r.tpr_at_fpr.items():
        assert got == pytest.approx(_brute(qf, gf, qp, gp, qc, gc, "euclidean", f)[0], abs=1e-12)
    with pytest.raises(ValueError, match="genuine and impostor"):
        verification_metrics(qf, gf, np.zeros(30, int), np.zeros(200, int), qc, gc)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        verification_metrics(qf, gf, qp, gp, qc, gc, fprs=(0.0,))


def test_evaluation_reports_them_when_the_config_asks():
    from types import SimpleNamespace

    import torch

    from reidbox.config import load_config
    from reidbox.evaluation import EvalSettings
    from reidbox.evaluation.evaluator import Features, evaluate_features

    qf, gf, qp, gp, qc, gc = _problem()
    items = [
        [SimpleNamespace(pid=int(p), camid=int(c)) for p, c in zip(pids, cams)]
        for pids, cams in ((qp, qc), (gp, gc))
    ]
    feats = Features(torch.from_numpy(qf).float(), torch.from_numpy(gf).float())
    off = evaluate_features(feats, *items, EvalSettings.from_config(load_config(None)))
    assert off.verification == {}
    cfg = load_config(None, ["TEST.ROC.ENABLED", "True"])
    on = evaluate_features(feats, *items, EvalSettings.from_config(cfg))
    want = verification_metrics(qf, gf, qp, gp, qc, gc).as_dict()
    assert on.verification == pytest.approx(want) and on.mAP == off.mAP
    assert set(want) == {"TPR@FPR=1e-04", "TPR@FPR=1e-03", "TPR@FPR=1e-02", "ROC_AUC"}
