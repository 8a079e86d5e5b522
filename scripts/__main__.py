import sys

from wavecore.cli import main

sys.exit(main())
