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
