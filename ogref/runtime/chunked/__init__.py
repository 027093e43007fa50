"""Chunked, content-addressed images (issue 14): the second image format beside the OpenGnSys
``partclone | compressor`` file, which stays the default.

An image is a :mod:`~.manifest` (filesystem, partclone's used-block bitmap, the list of chunks)
over a :mod:`~.store` of zstd-compressed chunks named by their BLAKE3 hash.  :mod:`~.blockstream`
reads and writes partclone's image stream, :mod:`~.chunker` cuts it (FastCDC) into the store,
:mod:`~.create`, :mod:`~.restore` and :mod:`~.convert` do the work on devices and files.  The
design and its measurements: ``docs/chunked-images.md``.
"""
