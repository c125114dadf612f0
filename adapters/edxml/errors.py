"""The one error of the edXML codec: ``str()`` says what is wrong, for the person who sent it."""

from __future__ import annotations


class EdxmlError(ValueError):
    """An edXML package that cannot be read or a model that cannot be written as edXML."""


class HostileInput(EdxmlError):
    """Input refused for safety: DTD/entities, too deep, too big, a zip bomb."""
