"""The relay's Prometheus metrics and health checks (issue 18).

Most figures are read from PostgreSQL when Prometheus scrapes (:mod:`.collector`): they are
then the same whichever worker process did the work, survive nothing but are cheap to keep,
and the relay's hot path pays nothing for them. Only what exists nowhere else is measured in
the worker processes (:mod:`.hot`: batch latency, intake paused); with several workers,
prometheus-client's multiprocess mode sums them (the parent serves the endpoint). The endpoint
(:mod:`.endpoint`) serves ``/metrics``, ``/healthz`` and ``/readyz`` on
``LIENTHONG_METRICS_ADDR``; :mod:`.health` says whether RabbitMQ and PostgreSQL answer.
"""
