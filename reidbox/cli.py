"""Command-line plumbing shared by every tool in ``tools/``.

One convention: flags may come anywhere, before or after the ``KEY VALUE`` config overrides;
the conventional fast-reid flags work or say what to use instead; an input error prints one
line (``--debug`` or ``REIDBOX_DEBUG=1`` also prints the traceback behind it) and exits 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import signal
import sys
import threading
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .errors import StoppedWithRankZero, UsageError, UserError

DEBUG_ENV = "REIDBOX_DEBUG"
# A config key on the command line: upper-case dotted words (``SOLVER.MAX_EPOCHS``).
_DOTTED_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


# Set by the ``reidbox`` console command (reidbox.commands._console): the program name its
# parsers show (``reidbox train``) and how the tools' docstrings spell each command there.
_COMMAND: Dict[str, object] = {"prog": None, "names": {}}


def set_command_names(prog: Optional[str], names: Optional[Dict[str, str]] = None) -> None:
    """Parsers made from now on show ``prog`` as their program and, in their help, each
    ``tools/X.py`` of ``names`` as its console command (``python tools/X.py`` included)."""
    _COMMAND["prog"] = prog
    _COMMAND["names"] = dict(names or {})


def _as_command(text: str) -> str:
    for script, command in _COMMAND["names"].items():
        # under torchrun the command runs as a module: torchrun ... -m reidbox.commands train
        module = "-m reidbox.commands " + command.split(" ", 1)[1]
        text = re.sub(r"(torchrun\b[^`]*?)" + re.escape(script), r"\g<1>" + module, text)
        text = text.replace(f"python {script}", command).replace(script, command)
    return text


def argument_parser(description: str, config: bool = False) -> argparse.ArgumentParser:
    """A tool's parser with ``--debug``; ``config`` adds ``--config-file`` and ``KEY VALUE``
    overrides. Parse it with :func:`parse_args` so flags may come anywhere."""
    p = argparse.ArgumentParser(
        prog=_COMMAND["prog"],
        description=_as_command(description or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if config:
        p.add_argument("--config-file", default="", metavar="FILE", help="yml config file")
        p.add_argument(
            "opts",
            nargs="*",
            metavar="KEY VALUE",
            help="config overrides, e.g. SOLVER.MAX_EPOCHS 10 (before or after flags)",
        )
    p.add_argument(
        "--debug",
        action="store_true",
        help=f"print the full traceback behind an error (or set {DEBUG_ENV}=1)",
    )
    return p


def add_output_dir(
    parser: argparse.ArgumentParser,
    help: str,
    *,
    config_key: bool = False,
    old: Sequence[str] = (),
    required: bool = False,
    default=None,
) -> None:
    """``--output-dir DIR``, every tool's output location. ``config_key``: it sets the config's
    ``OUTPUT_DIR`` (``--output-dir D`` is ``OUTPUT_DIR D``); ``old``: earlier spellings that
    still work, hidden from ``--help``; ``required``: one of them must be given."""
    parser.add_argument("--output-dir", default=default, metavar="DIR", help=help)
    for flag in old:
        parser.add_argument(flag, dest="output_dir", metavar="DIR", help=argparse.SUPPRESS)
    parser.set_defaults(_output_dir=(config_key, required))


def default_argument_parser(description: str) -> argparse.ArgumentParser:
    """The parser of a tool that reads a config: ``--config-file``, overrides, ``--debug``."""
    return argument_parser(description, config=True)


def add_allow_untrained(parser: argparse.ArgumentParser, what: str) -> None:
    """``--allow-untrained``: run a tool that needs ``MODEL.WEIGHTS`` on random weights."""
    parser.add_argument(
        "--allow-untrained",
        action="store_true",
        help=f"{what} without MODEL.WEIGHTS (random weights: only for testing)",
    )


def require_weights(cfg, args: argparse.Namespace, needs: str, what: str) -> None:
    """Refuse a config without ``MODEL.WEIGHTS`` unless ``--allow-untrained`` was given."""
    if not cfg.MODEL.WEIGHTS and not args.allow_untrained:
        raise UsageError(
            f"{needs} trained weights: set MODEL.WEIGHTS path/model_final.pth "
            f"(or pass --allow-untrained to {what} random weights)"
        )


def _top_level_keys() -> set:
    from .config import get_cfg_defaults

    return {k for k in get_cfg_defaults().keys()}


def is_override_key(token: str) -> bool:
    """Whether a command-line token names a config key (or a dotted one that looks meant to)."""
    return bool(_DOTTED_KEY.match(token)) or token in _top_level_keys()


def split_leading(tokens: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``Duke Market SOLVER.MAX_EPOCHS 5`` -> (positional words, ``KEY VALUE`` overrides): the
    overrides start at the first token that names a config key."""
    tokens = list(tokens)
    for i, tok in enumerate(tokens):
        if is_override_key(tok):
            return tokens[:i], tokens[i:]
    return tokens, []


def _option_arity(parser: argparse.ArgumentParser, token: str) -> Optional[int]:
    """How many following tokens the option ``token`` takes: a number, or None for "until the
    next option or config key" (``nargs`` + / * / ?), 0 for flags and unknown options."""
    if "=" in token:
        return 0
    action = parser._option_string_actions.get(token)
    if action is None:
        return 0
    if action.nargs is None:
        return 1
    if isinstance(action.nargs, int):
        return action.nargs
    return None


def split_overrides(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> Tuple[List[str], List[str]]:
    """``argv`` -> (tokens for argparse, ``KEY VALUE`` overrides in order).

    A config key takes the next token as its value whatever it looks like (``-1``, ``-5e-4``,
    ``[1, 2]``); an option's own arguments are never mistaken for keys, and an option with a
    variable number of arguments (``--runs A B``) stops at the first config key.
    """
    rest, pairs = [], []
    argv = list(argv)
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            rest.extend(argv[i:])
            break
        if tok.startswith("-") and len(tok) > 1 and not _is_number(tok):
            rest.append(tok)
            arity = _option_arity(parser, tok)
            i += 1
            if arity is None:
                while (
                    i < len(argv)
                    and not (argv[i].startswith("-") and not _is_number(argv[i]))
                    and not is_override_key(argv[i])
                ):
                    rest.append(argv[i])
                    i += 1
            else:
                rest.extend(argv[i : i + arity])
                i += arity
            continue
        if is_override_key(tok):
            if i + 1 >= len(argv):
                raise UsageError(f"config override {tok} has no value: write {tok} VALUE")
            pairs += [tok, argv[i + 1]]
            i += 2
            continue
        rest.append(tok)
        i += 1
    return rest, pairs


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _torchrun_line(argv: Sequence[str], n: str) -> str:
    keep, skip = [], False
    for tok in argv:
        if skip:
            skip = False
            continue
        if tok == "--num-gpus":
            skip = True
            continue
        if tok.startswith("--num-gpus="):
            continue
        keep.append(tok)
    if _COMMAND["prog"]:  # the console command: torchrun runs its module
        script = "-m reidbox.commands " + str(_COMMAND["prog"]).split(" ", 1)[1]
    else:
        script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "tools/train_net.py"
    return f"torchrun --nproc_per_node {n} {script} " + " ".join(shlex.quote(t) for t in keep)


# Flags of fast-reid / detectron2 / torchreid a user may type, and what reidbox uses instead.
_FOREIGN: Dict[str, str] = {
    "--num-machines": "multi-node runs start one torchrun per node: torchrun --nnodes N "
    "--node_rank R --master_addr HOST --nproc_per_node G tools/train_net.py ...",
    "--machine-rank": "multi-node runs pass the node rank to torchrun (--node_rank R)",
    "--dist-url": "torchrun sets the rendezvous (--master_addr HOST --master_port PORT)",
    "--opts": "config overrides need no flag: write KEY VALUE pairs anywhere on the line",
    "--root": "the datasets folder is a config key: DATASETS.ROOT PATH (or set REIDBOX_DATASETS)",
    "--sources": "training datasets are a config key: DATASETS.TRAIN \"['market1501']\"",
    "--targets": "test datasets are a config key: DATASETS.TEST \"['market1501']\"",
    "--resume": "only tools/train_net.py continues a run (tools/train_net.py --config-file F "
    "--resume)",
    "--eval-only": "tools/test_net.py evaluates a model (or tools/train_net.py --eval-only)",
}


def _check_foreign(
    parser: argparse.ArgumentParser, argv: Sequence[str], hints: Dict[str, str]
) -> None:
    known = parser._option_string_actions
    table = dict(_FOREIGN, **hints)
    for i, tok in enumerate(argv):
        name = tok.split("=", 1)[0]
        if name in known:
            continue
        if name == "--num-gpus":
            n = tok.split("=", 1)[1] if "=" in tok else (argv[i + 1] if i + 1 < len(argv) else "N")
            if n == "1" and "--num-gpus" not in hints:
                continue  # one process is what a plain run is
            raise UsageError(
                hints.get("--num-gpus")
                or (
                    f"--num-gpus: reidbox runs one process per GPU under torchrun: "
                    f"{_torchrun_line(argv, n)}"
                )
            )
        if name in table:
            raise UsageError(f"{name}: {table[name]}")


def _drop_num_gpus_one(argv: List[str]) -> List[str]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--num-gpus" and i + 1 < len(argv) and argv[i + 1] == "1":
            i += 2
            continue
        if argv[i] == "--num-gpus=1":
            i += 1
            continue
        out.append(argv[i])
        i += 1
    return out


def parse_args(
    parser: argparse.ArgumentParser,
    argv: Optional[Sequence[str]] = None,
    hints: Optional[Dict[str, str]] = None,
) -> argparse.Namespace:
    """Parse with flags anywhere: ``KEY VALUE`` overrides go to ``args.opts`` (when the parser
    takes them), every other token to argparse. ``hints`` maps flags this tool does not have to
    what to use instead (a one-line error rather than argparse's "unrecognized arguments")."""
    argv = list(sys.argv[1:] if argv is None else argv)
    hints = hints or {}
    _check_foreign(parser, argv, hints)
    argv = _drop_num_gpus_one(argv) if "--num-gpus" not in parser._option_string_actions else argv
    takes_opts = any(a.dest == "opts" for a in parser._actions)
    if takes_opts:
        rest, pairs = split_overrides(parser, argv)
    else:
        rest, pairs = argv, []
    args = parser.parse_intermixed_args(rest)
    if takes_opts:
        args.opts = list(args.opts or []) + pairs
    config_key, required = vars(args).pop("_output_dir", (False, False))
    if required and not args.output_dir:
        raise UsageError(f"{parser.prog}: --output-dir DIR is required (where to write)")
    if config_key and args.output_dir:
        pairs = zip(args.opts[::2], args.opts[1::2])
        given = [value for key, value in pairs if key == "OUTPUT_DIR"]
        if any(os.path.normpath(v) != os.path.normpath(args.output_dir) for v in given):
            raise UsageError(
                f"--output-dir {args.output_dir} and OUTPUT_DIR {given[-1]} disagree: give one"
            )
        args.opts = args.opts + ["OUTPUT_DIR", args.output_dir]
    return args


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """``--debug`` on the command line or ``REIDBOX_DEBUG`` set to a true value."""
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--debug" in argv or env not in ("", "0", "false", "no", "off")


def is_user_error(e: BaseException) -> bool:
    """Whether ``e`` is the input's or the machine's fault, printed as one line: a typed reidbox
    input error (:class:`~reidbox.errors.UserError`), or an I/O error on a named file (missing,
    not permitted, disk full). Anything else is a bug in reidbox and keeps its traceback."""
    if isinstance(e, UserError):
        return True
    return isinstance(e, OSError) and bool(e.filename)


_terminated: List[bool] = []


def _on_sigterm(signum, frame) -> None:
    """SIGTERM (how a scheduler or a container stops a job) stops the process as Ctrl-C does:
    the same cleanup and the same "how to continue" message, then one line saying so."""
    _terminated.append(True)
    raise KeyboardInterrupt


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.filename:
        from .utils.misc import describe_os_error

        return describe_os_error(e)
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    msg = str(msg)
    if "Original Traceback" in msg:  # re-raised from a DataLoader worker: keep the cause line
        msg = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
    # a message drawn over several lines (a dataset's expected folder tree) stays one line
    return " | ".join(" ".join(ln.split()) for ln in msg.splitlines() if ln.strip())


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv=None) -> None:
    """Run ``main``; input errors print ``error: ...`` on stderr and exit with status 2.

    With ``--debug`` (or ``REIDBOX_DEBUG=1``) the traceback is printed above that line. Any other
    exception is a bug and ends with its traceback (exit 1), so that it can be reported. Ctrl-C
    and SIGTERM end with one line (exit 130 and 143).
    """
    debug = debug_requested(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = main(argv)
    except KeyboardInterrupt:
        if _terminated:
            print("terminated (SIGTERM)", file=sys.stderr)
            sys.exit(143)
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except StoppedWithRankZero:
        sys.exit(2)  # rank 0 printed the error line
    except BrokenPipeError:
        # the reader went away (``reidbox --help | head``): not an error of the tool; stdout
        # is pointed at devnull so that Python's own flush at exit does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as e:
        if not is_user_error(e):
            raise  # a bug: its traceback is what a report needs
        logging.getLogger("reidbox").debug("error", exc_info=True)
        if debug:
            traceback.print_exc(file=sys.stderr)
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code or 0)
