"""The console service (``ogref serve``): the server role of OpenGnSys (ogAdmServer) as one
web service — a versioned JSON API for the console, the agents and the repository, backed by a
database, with per-computer credentials and console users.

Modules: :mod:`.db` (the tables, SQLAlchemy 2; migrations with Alembic), :mod:`.site_io` (the
site YAML as an import/export format of the database), :mod:`.auth` (agent request and server
answer signatures, replay counters, user passwords, sessions and CSRF).
"""
