"""Train a model: ``tools/train_net.py --config-file F [--output-dir DIR] [--resume |
--resume-force | --overwrite] [--eval-only] [KEY VALUE ...]``.

An ``OUTPUT_DIR`` that holds an earlier run's results is refused unless ``--resume`` continues
that run or ``--overwrite`` deletes its files first.

Flags may come before or after the ``KEY VALUE`` overrides. Several GPUs: ``torchrun
--nproc_per_node N tools/train_net.py ...`` (``--num-gpus N`` prints that line).
"""

import sys

from reidbox.config import load_config
from reidbox.engine import runner
from reidbox.engine.run_folder import StartMode
from reidbox.errors import UsageError
from reidbox.cli import add_output_dir, default_argument_parser, parse_args
from reidbox.utils.distributed import cleanup

COMMAND = "train"  # reidbox train


def main(argv=None) -> int:
    p = default_argument_parser(__doc__)
    add_output_dir(p, "the run's folder (the config's OUTPUT_DIR)", config_key=True)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument(
        "--resume-force",
        action="store_true",
        help="resume even from a checkpoint written with another config (changed "
        "keys are logged); schedule keys such as SOLVER.MAX_EPOCHS need no force",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start anew in an OUTPUT_DIR that holds an earlier run: its checkpoints, "
        "weights, metrics, logs and eval/ results are deleted when training starts",
    )
    p.add_argument("--eval-only", action="store_true", help="only test MODEL.WEIGHTS")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parse_args(p, argv)
    if args.overwrite and (args.resume or args.resume_force):
        raise UsageError("--overwrite starts a new run, --resume continues one: pass one of them")
    if not args.config_file and not args.opts:
        raise UsageError(
            "no config given: pass --config-file (a file, or a shipped name such as "
            "configs/demo/ptl.yml), or KEY VALUE overrides to train on the built-in defaults"
        )
    cfg = load_config(args.config_file or None, args.opts)
    try:
        if args.eval_only:
            runner.test(cfg, progress=not args.no_progress)
        else:
            start = (
                StartMode.RESUME
                if args.resume or args.resume_force
                else StartMode.OVERWRITE
                if args.overwrite
                else StartMode.NEW
            )
            runner.train(cfg, start, progress=not args.no_progress, force_resume=args.resume_force)
    except KeyboardInterrupt:
        if not args.eval_only:
            print(
                f"stopped; the same command with --resume continues from the newest checkpoint "
                f"in {cfg.OUTPUT_DIR} (SOLVER.CHECKPOINT_PERIOD {cfg.SOLVER.CHECKPOINT_PERIOD} "
                "epochs: later progress is lost)",
                file=sys.stderr,
            )
        raise
    finally:
        cleanup()  # leave the torchrun process group cleanly
    return 0
