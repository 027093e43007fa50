"""Image repositories (REPO): a named server address holding images.

A repository only lists what it holds; serving files (SMB, multicast, tracker) is the runtime's
and the labs' business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ogref.errors import FormatError, NotFoundError
from ogref.model.image import Image

FEC_PATTERN = re.compile(r"none|\d+x\d+/\d+")


@dataclass(frozen=True)
class Repository:
    """A repository server: name, IP address and the images it holds."""

    name: str
    address: str = ""
    images: tuple[Image, ...] = ()
    ou_directory: str = ""
    # udp-sender's forward error correction: OpenGnSys's sendFileMcast hard-codes 8x8/128
    # (interleave x redundancy / stripe size); "none" sends no redundancy
    multicast_fec: str = "8x8/128"

    def __post_init__(self) -> None:
        if not FEC_PATTERN.fullmatch(self.multicast_fec):
            raise FormatError(
                f"repository {self.name}: multicast_fec {self.multicast_fec!r} is not "
                "'none' or INTERLEAVExREDUNDANCY/STRIPE (e.g. 8x8/128)"
            )
        names = [i.name for i in self.images]
        if len(set(names)) != len(names):
            raise FormatError(f"repository {self.name}: duplicate image names")
        for image in self.images:
            if image.repository != self.name:
                raise FormatError(
                    f"image {image.name} belongs to repository {image.repository!r}, "
                    f"not {self.name!r}"
                )

    def image(self, name: str) -> Image:
        """The image called ``name``; NotFoundError if the repository does not hold it."""
        for image in self.images:
            if image.name == name:
                return image
        raise NotFoundError(f"image {name!r} not found in repository {self.name!r}")

    def has(self, name: str) -> bool:
        """Whether the repository holds an image of that name."""
        return any(i.name == name for i in self.images)
