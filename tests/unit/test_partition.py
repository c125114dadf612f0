"""Which relay worker consumes which outbox (``relay.worker.partition``), without services."""

from __future__ import annotations

import random
import zlib

import pytest

from relay.worker.partition import Partition


def _codes(n: int = 400, seed: int = 20261124) -> list[str]:
    """Agency codes of both forms (QCVN 102 and QĐ 20/2020), reproducible, all distinct."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        if rng.random() < 0.7:
            letter = rng.choice("ABCDEFGHIK")
            out.add(
                f"{rng.randrange(1000):03d}.{rng.randrange(100):02d}."
                f"{rng.randrange(100):02d}.{letter}{rng.randrange(100):02d}"
            )
        else:
            parts = [f"H{rng.randrange(100):02d}"] + [
                f"{rng.randrange(1000):0{rng.choice((2, 3))}d}" for _ in range(rng.randrange(1, 4))
            ]
            out.add(".".join(parts))
    return sorted(out)


CODES = _codes()


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_every_code_is_owned_by_exactly_one_worker(count: int) -> None:
    workers = [Partition(i, count) for i in range(count)]
    for code in CODES:
        owners = [p.index for p in workers if p.owns(code)]
        assert len(owners) == 1, (code, count, owners)
    if count > 1:
        # A hash, not everything to one worker: each gets a real share of 400 codes.
        shares = [sum(1 for c in CODES if p.owns(c)) for p in workers]
        assert min(shares) >= len(CODES) // count // 2, shares


@pytest.mark.parametrize("count", [2, 3, 5])
def test_ownership_is_stable_and_depends_only_on_the_code_and_the_worker_count(
    count: int,
) -> None:
    first = {c: [Partition(i, count).owns(c) for i in range(count)] for c in CODES}
    # Asked again, in another order, among other codes, with fresh objects: the same answer.
    shuffled = list(CODES)
    random.Random(7).shuffle(shuffled)
    again = {c: [Partition(i, count).owns(c) for i in range(count)] for c in shuffled}
    assert again == first
    alone = {c: [Partition(i, count).owns(c) for i in range(count)] for c in CODES[:10]}
    assert alone == {c: first[c] for c in CODES[:10]}
    # Equal partitions are interchangeable (a worker process gets a pickled copy).
    assert Partition(1, count) == Partition(1, count)
    # The documented rule, so that another process (or version) computes the same owners.
    for c in CODES:
        assert first[c].index(True) == zlib.crc32(c.encode("utf-8")) % count


def test_a_single_worker_owns_everything() -> None:
    assert all(Partition(0, 1).owns(c) for c in CODES)
    assert all(Partition().owns(c) for c in CODES)
    assert Partition() == Partition(0, 1)


@pytest.mark.parametrize(
    ("index", "count"),
    [(1, 1), (2, 2), (5, 3), (0, 0), (-1, 2), (0, -1), (-1, -1), (3, 0)],
)
def test_a_worker_outside_its_count_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError):
        Partition(index, count)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_only_the_first_worker_leads(count: int) -> None:
    assert [Partition(i, count).leader for i in range(count)] == [True] + [False] * (count - 1)


@pytest.mark.parametrize(
    ("index", "count", "text"), [(0, 1, "1/1"), (0, 2, "1/2"), (1, 2, "2/2"), (2, 5, "3/5")]
)
def test_a_worker_reads_as_its_number_from_one_over_the_count(
    index: int, count: int, text: str
) -> None:
    assert str(Partition(index, count)) == text
