"""The agency adapter: the daemon next to a DMS, its connectors and edXML conversion."""
