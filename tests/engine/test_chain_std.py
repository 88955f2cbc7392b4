"""A chain step that distils ("+STD"): teacher = the previous step's PTL run."""

import json

import pytest

from reidbox.config import ConfigError
from reidbox.engine.chain import run_chain
from tests.engine.test_chain import chain_opts, read_csv

PTL_YML = (
    "MODEL:\n  META_ARCHITECTURE: ptl\n  HEADS:\n    PAPER:\n      FEAT_DIM: 32\n"
    "      CLASSIFIER_HIDDEN: [16]\n"
)


@pytest.fixture
def student_yml(tmp_path):
    p = tmp_path / "student.yml"
    p.write_text(
        "MODEL:\n  META_ARCHITECTURE: std\n  LOSSES:\n    NAMES: ['std']\n  STD:\n    LAMBDA: 0.5\n"
    )
    return str(p)


@pytest.mark.slow
def test_std_step_distils_the_previous_ptl_step(tmp_path, student_yml):
    out = tmp_path / "chain"
    opts = chain_opts(str(tmp_path / "data"), out) + ["CHAIN.STD_CONFIG", student_yml]
    (tmp_path / "ptl.yml").write_text(PTL_YML)  # the chain's model: PTL (the command line
    # applies to every step, the student's META_ARCHITECTURE comes from CHAIN.STD_CONFIG)
    rows = run_chain(
        str(tmp_path / "ptl.yml"), ["synthetic_a", "synthetic_a+STD"], opts, progress=False
    )
    assert [r["name"] for r in rows] == ["synthetic_a", "synthetic_a+STD"]
    assert rows[1]["std_lambda"] == 0.5 and rows[0]["std_lambda"] == ""
    with open(out / "02_synthetic_a_std" / "metrics.json") as f:
        m = json.load(f)
    assert m["std"]["teacher_weights"].endswith("01_synthetic_a/model_final.pth")
    assert m["std"]["teacher_feature_dim"] == 32 and "ptl" not in m
    with open(out / "manifest.json") as f:
        step2 = json.load(f)["steps"][1]
    assert step2["teacher"]["lambda"] == 0.5
    assert any(k.startswith("ptl.") for k in step2["load"]["unused"])  # teacher-only parts
    assert len(read_csv(out / "summary.csv")) == 2


def test_std_step_needs_a_teacher(tmp_path, student_yml):
    opts = chain_opts(str(tmp_path / "data"), tmp_path / "c") + ["CHAIN.STD_CONFIG", student_yml]
    with pytest.raises(ConfigError, match="first: no previous step"):
        run_chain(None, ["synthetic_a+STD"], opts, progress=False)
    with pytest.raises(ConfigError, match="CHAIN.STD_CONFIG must name"):
        run_chain(
            None,
            ["synthetic_a", "synthetic_a+STD"],
            chain_opts(str(tmp_path / "data"), tmp_path / "d"),
            progress=False,
        )
