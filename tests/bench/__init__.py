"""``make bench``: the relay against the broker's own ceiling and a naive relay (issue 8).

Run with ``python -m tests.bench`` (``--help`` for options). Not part of ``make test``.
"""
