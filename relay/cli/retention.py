"""``lienthong retention run``: remove the payloads no delivery needs any more."""

from __future__ import annotations

import click

from relay.cli.common import echo_json, friendly_errors, settings_from_env
from relay.cli.database import database_errors
from relay.errors import InvalidInput


@click.group()
def retention() -> None:
    """Retention of documents' payloads (metadata and timelines are kept)."""


@retention.command("run")
@click.option(
    "--days",
    type=click.IntRange(min=0),
    help=(
        "Older than this many days; 0: whatever their age (default: LIENTHONG_RETENTION_DAYS, "
        "where 0 means retention is off)."
    ),
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=100_000),
    help="Document ids per transaction (default: LIENTHONG_RETENTION_BATCH_SIZE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def run(days: int | None, batch_size: int | None, as_json: bool) -> None:
    """Remove the payloads of documents older than --days whose deliveries no longer need them
    (and of documents taken back, 13 → 15, at any age), in small batches with a checkpoint:
    stopped (Ctrl-C), it resumes where it was at the next run.

    A delivery still pending, queued, retrying, failed or awaiting an answer to a take-back
    keeps its document's payload whatever its age.
    """
    from relay.db.engine import make_engine
    from relay.retention.job import run_retention

    settings = settings_from_env()
    if days is None:
        days = settings.retention_days
        if days == 0:
            raise InvalidInput(
                "retention is off (LIENTHONG_RETENTION_DAYS=0): give --days N, the age in days "
                "beyond which payloads no delivery needs are removed"
            )
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with database_errors():
            result = run_retention(engine, settings, days=days, batch_size=batch_size)
    finally:
        engine.dispose()
    data = {
        "days": days,
        "payloads_removed": result.removed,
        "bytes_removed": result.bytes_removed,
        "chunks_removed": result.chunks_removed,
        "chunk_bytes_removed": result.chunk_bytes_removed,
        "batches": result.batches,
        "seconds": round(result.seconds, 3),
        "finished": result.finished,
    }
    if as_json:
        echo_json(data)
        return
    click.echo(
        f"removed {result.removed} payloads ({result.bytes_removed / 1e6:.1f} MB as stored) "
        f"older than {days} days and {result.chunks_removed} attachment chunks "
        f"({result.chunk_bytes_removed / 1e6:.1f} MB) in {result.batches} batches, "
        f"{result.seconds:.1f} s"
        + ("" if result.finished else "; stopped before the end, the next run resumes")
    )
