"""The one domain model of ogLab: storage, images, repositories, the console tree, methods,
session strings, status codes and the engine.cfg policy.  Frozen values only, no I/O, no rules.
"""

from ogref.model.image import (
    CloneTool,
    Compressor,
    Image,
    ImageFormat,
    ImageInfo,
    ImageKind,
    validate_image_name,
)
from ogref.model.method import (
    ALL_METHODS,
    MULTICAST_CACHE,
    MULTICAST_DIRECT,
    TORRENT_CACHE,
    UNICAST_CACHE,
    UNICAST_DIRECT,
    Method,
    Staging,
    Transport,
)
from ogref.model.policy import CacheFullAction, EngineConfig, NotCacheProtocol
from ogref.model.protocol import (
    Duplex,
    MulticastClientSession,
    MulticastSession,
    TorrentMode,
    TorrentSession,
)
from ogref.model.repository import Repository
from ogref.model.site import Classroom, Computer, Group, HardwareProfile, OrgUnit
from ogref.model.status import ClientStatus
from ogref.model.storage import (
    CACHE_LABEL,
    CACHE_MBR_ID,
    Cache,
    CachedImage,
    Disk,
    DiskLayout,
    Filesystem,
    Partition,
    TableKind,
)

__all__ = [
    "ALL_METHODS",
    "CACHE_LABEL",
    "CACHE_MBR_ID",
    "MULTICAST_CACHE",
    "MULTICAST_DIRECT",
    "TORRENT_CACHE",
    "UNICAST_CACHE",
    "UNICAST_DIRECT",
    "Cache",
    "CacheFullAction",
    "CachedImage",
    "Classroom",
    "ClientStatus",
    "CloneTool",
    "Compressor",
    "Computer",
    "Disk",
    "DiskLayout",
    "Duplex",
    "EngineConfig",
    "Filesystem",
    "Group",
    "HardwareProfile",
    "Image",
    "ImageFormat",
    "ImageInfo",
    "ImageKind",
    "Method",
    "MulticastClientSession",
    "MulticastSession",
    "NotCacheProtocol",
    "OrgUnit",
    "Partition",
    "Repository",
    "Staging",
    "TableKind",
    "TorrentMode",
    "TorrentSession",
    "Transport",
    "validate_image_name",
]
