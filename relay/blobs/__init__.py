"""The hub's store of large attachments, which travel in chunks (issue 17).

:mod:`relay.blobs.store` keeps the chunks in PostgreSQL (content-addressed rows);
:mod:`relay.blobs.service` takes the chunks senders upload and answers recipients' requests.
"""
