"""The ``lienthong`` console script: the composition root wiring relay and adapters."""
