"""One module per ``wavecore`` command; :mod:`wavecore.cli` discovers them."""
