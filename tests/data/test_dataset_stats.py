from reidbox.data import build_dataset
from reidbox.data.stats import format_stats, stats_rows

from .fixtures import make_cifar10, make_duke, make_market, run_tool


def test_stats_table_and_tool(tmp_path, capsys):
    exp = make_market(str(tmp_path))
    make_duke(str(tmp_path))
    make_cifar10(str(tmp_path))
    rows = stats_rows(build_dataset("market1501", root=str(tmp_path)))
    assert rows[2] == [
        "gallery",
        exp["gallery"]["images"],
        exp["gallery"]["identities"],
        len(exp["gallery"]["cameras"]),
    ]
    table = format_stats(build_dataset("market_duke", root=str(tmp_path)))
    assert "| query (dukemtmcreid)" in table and "| train " in table
    run_tool("dataset_stats.py", ["market1501", "cifar10", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"| train   |     {exp['train']['images']} |" in out
    assert "| classes |" in out


def test_stats_of_a_generated_dataset_read_it_as_it_lies(tmp_path, capsys):
    from reidbox.data.synthetic import read_manifest

    small = dict(num_train_ids=3, num_test_ids=2, num_cameras=2, image_size=(32, 16))
    build_dataset("synthetic_a", root=str(tmp_path), **small)
    folder = str(tmp_path / "synthetic_a")
    before = read_manifest(folder)
    run_tool("dataset_stats.py", ["synthetic_a", "--root", str(tmp_path)])
    assert read_manifest(folder) == before  # not regenerated at the default 150 identities
    train = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| train"))
    assert [c.strip() for c in train.strip("|").split("|")][2:] == ["3", "2"]  # ids, cameras
