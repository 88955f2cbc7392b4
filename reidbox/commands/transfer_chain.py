"""Fine-tune one model through datasets in order, evaluating on every earlier test set.

``tools/transfer_chain.py Duke Market MSMT17 [--config-file F] [KEY VALUE ...]``, or with the
chain declared in the config: ``tools/transfer_chain.py --config-file configs/chains/X.yml``.
Rerunning the same command resumes where it stopped; finished steps are never retrained.
See docs/transfer.md.
"""

from reidbox.cli import add_output_dir, default_argument_parser, parse_args, split_leading
from reidbox.engine import runner
from reidbox.engine.chain import run_chain

COMMAND = "chain"  # reidbox chain


def main(argv=None) -> int:
    p = default_argument_parser(__doc__)
    add_output_dir(p, "the chain's folder, one subfolder per step (OUTPUT_DIR)", config_key=True)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.epilog = (
        "positional: dataset aliases in order (Duke, Market, MSMT17, CUHK03, "
        "Market-Duke, any registered name; 'X+STD' distils), and KEY VALUE overrides"
    )
    args = parse_args(
        p,
        argv,
        hints={
            "--resume": "a chain resumes by itself: run the same command again",
            "--eval-only": "each finished step keeps its metrics.json; to re-test one step run "
            "tools/test_net.py --config-file STEP/config.yaml MODEL.WEIGHTS "
            "STEP/model_final.pth",
        },
    )
    steps, opts = split_leading(args.opts)
    rows = run_chain(
        args.config_file or None,
        steps or None,
        opts,
        progress=not args.no_progress,
        train=runner.train,
        test=runner.test,
    )
    print(f"{len(rows)} steps done; see summary.md in the chain's OUTPUT_DIR")
    return 0
