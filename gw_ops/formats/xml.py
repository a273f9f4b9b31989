"""The one parser of untrusted XML: VOEvents from the network, event files uploaded to GraceDB.

lxml (libxml2) parses in linear time, but its defaults are not safe for input from
outside: a document can declare entities that expand exponentially ("billion
laughs"), or external entities that read local files or URLs (XXE).  :func:`parse_xml`
closes all of these doors at once:

* the payload is bounded in size before libxml2 sees it (:class:`XMLTooLarge`);
* entities are never resolved, no DTD is loaded, nothing is fetched from the network,
  and libxml2's ``huge_tree`` limits stay on;
* a document with a DOCTYPE is refused (VOEvents never carry one), unless the caller
  allows one (LIGO-LW files name an external DTD that is never loaded); even then, an
  entity declaration or an entity reference is refused.

Every refusal is an :class:`XMLRejected` (a :class:`ValueError`) with a one-line
reason, so each caller can turn it into its own "bad input" error (a VTP nak, an HTTP
400, a dead letter) and never mistakes it for a transient failure.

Examples
--------
>>> parse_xml(b"<a><b/></a>", max_bytes=1024).tag
'a'
>>> parse_xml(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1024)
Traceback (most recent call last):
...
gw_ops.formats.xml.XMLTooLarge: XML document of 2007 bytes is larger than the 1024 bytes allowed
"""
from __future__ import annotations

from lxml import etree


class XMLRejected(ValueError):
    """The document is not acceptable XML; the message says why."""


class XMLTooLarge(XMLRejected):
    """The document is longer than the caller allows."""


class MalformedXML(XMLRejected):
    """The document is not well-formed XML (or libxml2 refused to expand it).

    Attributes
    ----------
    detail : str
        libxml2's own message, for callers that word the reason their own way.
    """

    def __init__(self, detail: str):
        super().__init__(f"not well-formed XML: {detail}")
        self.detail = detail


class XMLDoctypeRefused(XMLRejected):
    """The document carries a DOCTYPE, an entity declaration or an entity reference."""


def hardened_parser() -> etree.XMLParser:
    """An lxml parser that resolves no entity, loads no DTD and never touches the network.

    ``huge_tree=False`` keeps libxml2's limits on depth, text node size and entity
    amplification.  Comments and processing instructions are dropped: no consumer
    reads them.  A new parser per call: lxml parsers are not safe to share between
    threads.
    """
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True)


def parse_xml(payload: bytes, *, max_bytes: int, allow_doctype: bool = False) -> etree._Element:
    """Parse untrusted XML and return its root element.

    Parameters
    ----------
    payload : bytes
        The document.
    max_bytes : int
        Largest document accepted (bytes); longer ones are refused before parsing.
    allow_doctype : bool, optional
        Accept a DOCTYPE (as LIGO-LW files carry: an external DTD, never loaded).
        Entity declarations and entity references are refused all the same.  False by
        default: any DOCTYPE is refused.

    Returns
    -------
    lxml.etree._Element

    Raises
    ------
    TypeError
        ``payload`` is not bytes (a caller's bug, not bad input).
    XMLTooLarge
        ``payload`` is longer than ``max_bytes``.
    MalformedXML
        Not well-formed XML, empty, or refused by libxml2's own amplification guard.
    XMLDoctypeRefused
        A DOCTYPE (when not allowed), an entity declaration or an entity reference.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    if len(payload) > max_bytes:
        raise XMLTooLarge(f"XML document of {len(payload)} bytes is larger than the "
                          f"{max_bytes} bytes allowed")
    try:
        root = etree.fromstring(bytes(payload), parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedXML(str(exc)) from None
    if root is None:  # lxml returns None for some recoverable empty documents
        raise MalformedXML("empty XML document")
    docinfo = root.getroottree().docinfo
    has_doctype = bool(docinfo.doctype) or docinfo.externalDTD is not None
    if not allow_doctype:
        if has_doctype or _declares_entities(docinfo):
            raise XMLDoctypeRefused("XML with a DOCTYPE/DTD is refused (entity expansion risk)")
        return root
    if _declares_entities(docinfo):
        raise XMLDoctypeRefused("XML entity declarations are not allowed")
    if has_doctype and next(root.iter(etree.Entity), None) is not None:
        # An entity declared in the (unloaded) external DTD is left as a reference node.
        raise XMLDoctypeRefused("XML entities are not allowed")
    return root


def _declares_entities(docinfo: etree.DocInfo) -> bool:
    """Whether the internal DTD subset declares any entity."""
    internal = docinfo.internalDTD
    return internal is not None and next(internal.iterentities(), None) is not None
