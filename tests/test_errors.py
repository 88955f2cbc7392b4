"""Every error class reidbox defines is an input error under one base, reported as one line."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import reidbox
from reidbox.errors import UserError


def _error_classes():
    found = {}
    for info in pkgutil.walk_packages(reidbox.__path__, "reidbox."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_reidbox_error_is_a_user_error():
    classes = _error_classes()
    assert len(classes) >= 8, sorted(classes)  # config, dataset, image, weights, checkpoint, ...
    stray = sorted(n for n, c in classes.items() if not issubclass(c, UserError))
    assert not stray, f"define input errors under reidbox.errors.UserError: {stray}"


def test_library_layers_do_not_import_the_cli():
    # the CLI wrapper sits on top; nothing below it may need it (nor argparse plumbing)
    code = (
        "import sys, reidbox.engine.runner, reidbox.engine.chain, reidbox.api; "
        "print('reidbox.cli' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_main_reports_a_user_error_in_one_line(capsys):
    import pytest

    from reidbox.cli import run_main

    class Custom(UserError):
        pass

    def main(argv):
        raise Custom("DATASETS.ROOT /nowhere does not exist: set it to your datasets folder")

    with pytest.raises(SystemExit) as e:
        run_main(main, argv=[])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: DATASETS.ROOT /nowhere does not exist: set it to your datasets folder"]


def _run_main(main, capsys):
    import pytest

    from reidbox.cli import run_main

    with pytest.raises(SystemExit) as e:
        run_main(main, argv=[])
    return e.value.code, capsys.readouterr().err


def test_a_bug_keeps_its_traceback():
    # a bare built-in error is a bug in reidbox, not a user's input: it is not turned into a
    # one-line "error:" (which would hide where it happened) but propagates to Python
    import pytest

    from reidbox.cli import run_main

    for bug in (KeyError("weights"), ValueError("too many values"), OSError("no file name")):

        def main(argv, bug=bug):
            raise bug

        with pytest.raises(type(bug)):
            run_main(main, argv=[])


def test_typed_input_errors_and_named_file_errors_are_one_line(capsys):
    import errno

    from reidbox.errors import InputError, UnknownNameError

    def unknown(argv):
        raise UnknownNameError("unknown backbone 'resnet5'; available: resnet50")

    code, err = _run_main(unknown, capsys)
    assert (code, err.strip()) == (2, "error: unknown backbone 'resnet5'; available: resnet50")
    assert isinstance(InputError("x"), ValueError)  # callers catching ValueError still do

    def full(argv):
        raise OSError(errno.ENOSPC, "No space left on device", "/out/model_final.pth")

    code, err = _run_main(full, capsys)
    assert code == 2
    assert err.strip() == (
        "error: /out/model_final.pth: No space left on device; free disk space or choose "
        "another OUTPUT_DIR"
    )


def test_sigterm_ends_with_one_line_like_ctrl_c(tmp_path):
    import os
    import signal
    import time

    code = (
        "import sys, time\n"
        "from reidbox.cli import run_main\n"
        "def main(argv):\n"
        "    print('ready', flush=True)\n"
        "    try:\n"
        "        time.sleep(60)\n"
        "    except KeyboardInterrupt:\n"
        "        print('cleanup ran', flush=True)\n"
        "        raise\n"
        "run_main(main, [])\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 143
    assert out.strip() == "cleanup ran"
    assert err.strip() == "terminated (SIGTERM)"
