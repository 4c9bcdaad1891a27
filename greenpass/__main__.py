import sys

from greenpass.cli import main

sys.exit(main())
