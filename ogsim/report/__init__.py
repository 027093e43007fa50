"""Reports from ``results.json``: matplotlib figures and Markdown/HTML summaries.

The only place in ogsim that imports matplotlib (lazily, Agg backend).  Reads results only.
"""
