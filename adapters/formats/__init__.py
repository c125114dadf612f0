"""File formats of the folder connector: JSON (the wire models) and edXML."""
