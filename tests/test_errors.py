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
