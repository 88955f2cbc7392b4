"""The command-line tools' bodies, one module each with ``main(argv=None) -> int``.

``tools/<name>.py`` (the interface the README shows first) and the ``reidbox`` console command
run the same functions, so an installed package has every tool without a clone.
"""
