"""One module per ``wavecore`` command; :mod:`scripts.cli` discovers them."""
