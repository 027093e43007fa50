"""OpenGnSys protocol compatibility: ogLab's service as seen by OpenGnSys's own tools.

ogLab's API (``/api/v1``) stays primary; this package is a facade over the same engine and
database, so ogCLI and ogCp (clients of ogServer's REST API) and ogClient (the live client that
connects to ogServer's agent port) can work with an ogLab site.  Nothing here plans or decides:
a restore asked for here is a :class:`~ogref.site.RestoreSpec` handed to
:meth:`~ogref.service.engine.Engine.submit_spec`, exactly as ``POST /api/v1/operations`` does.

- :mod:`.codes` — OpenGnSys's numbers and spellings (client states, filesystem ids, partition
  type codes, restore ``type`` strings) and their ogLab equivalents.
- :mod:`.rest` — ogServer's REST API (``ogref serve --ogserver-listen``): its paths at the root,
  its ``Authorization`` header, its bare 400/401/404/405 errors, its JSON field names.
- :mod:`.agent` — ogServer's agent protocol (``--ogclient-listen``): requests written to the
  client's connection, ``HTTP/1.0`` answers, the client identified by its source address.

The mapping table, what is not supported and why: ``docs/opengnsys-compat.md``.
"""
