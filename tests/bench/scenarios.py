"""What a run measures: scenarios, systems and their sizes (full and ``--quick``)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.bench.payloads import KIB, MIB

SYSTEMS = ("ceiling", "naive", "relay")
#: Systems a run measures only when named in ``--systems``: the ceiling that also publishes the
#: relay's receipt to each sender (tests/bench/ceiling.py).
CEILING_RECEIPT = "ceiling+receipt"
EXTRA_SYSTEMS = (CEILING_RECEIPT,)
#: The forwarders: no database rows to wait for; measured at the relay's load too.
CEILINGS = ("ceiling", CEILING_RECEIPT)


@dataclass(frozen=True)
class Scenario:
    name: str
    recipients: int
    body_bytes: int
    attachment_bytes: int
    preload: int  # documents queued before a system starts, for its maximum throughput
    #: False: throughput and memory only (the half-load phase's warm-up sends a document per
    #: sender, 40 GB of inbox copies for a 20 MB document to 95 agencies)
    latency: bool = True


def large_scenarios(quick: bool, fanout: int = 95) -> list[Scenario]:
    """Run only when named (``--scenarios 20MB-fanout95``): each document puts about 2 GB into
    the recipients' inboxes, which a broker shared with others should not get unasked. What it
    shows is the relay's memory with a large document fanned out to many agencies."""
    # 15 MiB of attachment is about 21 MB of JSON (base64): a 20 MB document.
    return [
        Scenario(
            f"20MB-fanout{fanout}", fanout, 2 * KIB, 15 * MIB, 1 if quick else 3, latency=False
        )
    ]


def scenarios(quick: bool, fanout: int = 95) -> list[Scenario]:
    """The scenarios a run measures by default."""
    if quick:
        return [
            Scenario("2KiB-1", 1, 2 * KIB, 0, 1_000),
            Scenario(f"2KiB-fanout{fanout}", fanout, 2 * KIB, 0, 30),
            Scenario("1MiB-attachment", 1, 2 * KIB, MIB, 15),
        ]
    return [
        Scenario("2KiB-1", 1, 2 * KIB, 0, 20_000),
        Scenario(f"2KiB-fanout{fanout}", fanout, 2 * KIB, 0, 400),
        Scenario("1MiB-attachment", 1, 2 * KIB, MIB, 480),
    ]


@dataclass(frozen=True)
class Limits:
    drain_cap_s: float  # a system gets this long to drain its preload; the rest is purged
    paced_s: float  # how long the half-load latency phase offers documents
    paced_min_docs: int
    settle_s: float  # for the inboxes to drain after a system stopped
    window: int  # unconfirmed publishes per simulated adapter


def limits(quick: bool) -> Limits:
    if quick:
        return Limits(drain_cap_s=4, paced_s=2, paced_min_docs=10, settle_s=0.5, window=300)
    return Limits(drain_cap_s=30, paced_s=10, paced_min_docs=30, settle_s=1.0, window=300)
