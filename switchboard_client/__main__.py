"""``python -m switchboard_client chat --user alice``: see :mod:`switchboard_client.cli`."""

import sys

from switchboard_client.cli import main

sys.exit(main())
