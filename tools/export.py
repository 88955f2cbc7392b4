#!/usr/bin/env python
"""Export: ``tools/export.py --config-file F MODEL.WEIGHTS w --format onnx|torchscript``

The body is reidbox/commands/export.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.export import main

if __name__ == "__main__":
    run_main(main)
