"""Building libvirt XML with ``xml.etree.ElementTree``: an element helper and the serialiser.

Values (names, paths, MACs, URLs) become text and attribute values escaped by ElementTree, so none
can add attributes or elements; characters XML cannot hold at all (control characters) are refused
with ValueError.  This module knows no libvirt element; domain.py and network.py do.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

DNSMASQ_NS = "http://libvirt.org/schemas/network/dnsmasq/1.0"
ET.register_namespace("dnsmasq", DNSMASQ_NS)
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
ET.register_namespace("qemu", QEMU_NS)

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    if _NOT_XML.search(value):
        raise ValueError(f"{value!r} holds characters XML cannot carry")
    return value


def element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """A child ``<tag attr=…>text</tag>`` of ``parent`` (text and values checked, then escaped)."""
    child = ET.SubElement(parent, tag, {k: _xml_text(v) for k, v in attrs.items()})
    if text is not None:
        child.text = _xml_text(text)
    return child


def to_xml(root: ET.Element) -> str:
    """The document, indented, as a string."""
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
