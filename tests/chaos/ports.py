"""The ports the fault suite may use, and nothing else (services of its own; see
``tests/private_services.py``)."""

from __future__ import annotations

#: The 3-node cluster chaos1…chaos3: AMQP, management, Erlang distribution.
CLUSTER_NAMES = ("chaos1", "chaos2", "chaos3")
CLUSTER_AMQP = (5681, 5682, 5683)
CLUSTER_MANAGEMENT = (15681, 15682, 15683)
CLUSTER_DIST = (25681, 25682, 25683)
#: The failover proxy in front of the cluster (the single URL relay and adapters are given).
CLUSTER_PROXY = 5684
#: The node the process-kill and PostgreSQL cases run on (started once per run).
BROKER = ("chaos5", 5685, 15685, 25685)
#: The node the broker-restart case stops and starts.
RESTARTED_BROKER = ("chaos6", 5686, 15686, 25686)
#: A PostgreSQL cluster of the suite's own.
POSTGRES = 5471
