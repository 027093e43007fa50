"""What travels between the service and an agent about a command: a DeployRequest and a
MASTER's announced image as plain JSON (the inverse functions rebuild them).  No I/O."""

from typing import Any

from ogref.core.deploy import DeployRequest, Operation
from ogref.core.events import (
    Source,
)
from ogref.model import (
    Filesystem,
    Image,
    Method,
    MulticastSession,
    TorrentSession,
)
from ogref.model.image import Compressor, ImageFormat

Json = dict[str, Any]


def request_to_json(req: DeployRequest) -> Json:
    """A DeployRequest as plain JSON."""
    return {
        "operation": str(req.operation),
        "image": req.image,
        "method": str(req.method),
        "disk": req.disk,
        "partition": req.partition,
        "source": str(req.source),
        "multicast": str(req.multicast) if req.multicast else None,
        "torrent": str(req.torrent) if req.torrent else None,
        "allow_fs_change": req.allow_fs_change,
        "postconf": req.postconf,
    }


def request_from_json(d: Json) -> DeployRequest:
    """The inverse of :func:`request_to_json`."""
    return DeployRequest(
        operation=Operation(d["operation"]),
        image=d["image"],
        method=Method.parse(d["method"]),
        disk=int(d.get("disk", 1)),
        partition=int(d.get("partition", 1)),
        source=Source(d.get("source", "REPO")),
        multicast=MulticastSession.parse(d["multicast"]) if d.get("multicast") else None,
        torrent=TorrentSession.parse(d["torrent"]) if d.get("torrent") else None,
        allow_fs_change=bool(d.get("allow_fs_change", False)),
        postconf=bool(d.get("postconf", True)),
    )


def image_to_json(image: Image) -> Json:
    """What a MASTER announces of the image it sends."""
    return {
        "name": image.name,
        "filesystem": str(image.filesystem),
        "data_size": image.data_size,
        "stored_size": image.stored_size,
        "compressor": str(image.compressor),
        "checksum": image.checksum,
        "os_name": image.os_name,
        "repository": image.repository,
        "format": str(image.format),
    }


def image_from_json(d: Json) -> Image:
    """The inverse of :func:`image_to_json`."""
    return Image(
        name=str(d["name"]),
        filesystem=Filesystem(d["filesystem"]),
        data_size=int(d["data_size"]),
        stored_size=int(d.get("stored_size", 0)),
        repository=str(d.get("repository", "repo")),
        compressor=Compressor(d.get("compressor", "ZSTD")),
        checksum=str(d.get("checksum", "")),
        os_name=str(d.get("os_name", "")),
        format=ImageFormat(d.get("format", ImageFormat.PARTCLONE.value)),
    )
