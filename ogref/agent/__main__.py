"""``python -m ogref.agent``: a live client."""

import sys

from ogref.agent.live import main

sys.exit(main())
