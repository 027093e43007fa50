"""``python -m ogref.agent``: a live client."""

import gc
import sys

from ogref.agent.live import main

# Everything imported so far lives as long as the agent: keep it out of every later collection.
# The disk module's explicit gc.collect() (before libparted's device cache is freed) then scans
# only what the agent made since — measured ≈ 55 ms → < 1 ms per collection, 4 per restore.
gc.freeze()
sys.exit(main())
