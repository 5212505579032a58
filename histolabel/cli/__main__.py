"""`python -m histolabel.cli ...`: the same command as the `histolabel` console script."""

import sys

from histolabel.cli.entry import main

sys.exit(main())
