"""``python -m reidbox.commands <command> ...``: the ``reidbox`` command without installing it,
e.g. under torchrun (``torchrun --nproc_per_node 2 -m reidbox.commands train ...``)."""

from ._console import main

if __name__ == "__main__":  # importing this module (e.g. pkgutil.walk_packages) runs nothing
    main()
