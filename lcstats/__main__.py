import sys

from lcstats.cli import main

sys.exit(main())
