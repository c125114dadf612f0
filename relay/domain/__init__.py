"""Pure domain rules of the relay: no pika, no SQLAlchemy here (a test checks the imports)."""
