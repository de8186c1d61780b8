"""`python -m arm_a3c COMMAND ...`: the same as the installed `arm-a3c` command."""

import sys

from arm_a3c.cli import main

sys.exit(main())
