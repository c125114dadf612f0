"""``python -m tests.bench.bigdocs``: large documents end to end (issue 17).

One relay and 1 + N adapters run as real processes on an environment of their own (own vhost
and database, removed at the end). An incompressible attachment of ``--size-mb`` MB is written
into an edXML package (base64, as a DMS writes it) and renamed into the sender's ``outbox/``;
the clock runs until every recipient's DMS folder holds the document and the sender has every
recipient's status 01. Then:

* each recipient's copy of the attachment is decoded from its document file and compared with
  the original byte for byte (``cmp``);
* the peak memory (``VmHWM``) of every relay and adapter process (and their children) is read;
* the hub's bytes on disk (``pg_total_relation_size`` of ``blob_chunks`` and ``documents``,
  before and after) are shown next to the attachment's size: with ``--recipients 20`` the
  attachment is still stored once;
* the time is set next to ``cp`` of the same file on the same disk (with ``sync``).

``--kill relay`` SIGKILLs the relay once a third of the bytes is at the hub (mid-upload);
``--kill adapter`` SIGKILLs the first recipient's adapter once a third of the attachment is
written into its ``parts/`` (mid-assembly). Either is restarted, and the run checks the
document still arrives byte-exact, handed over once (one document file per recipient), with
one 01 back per recipient.

Usage: ``make bench-bigdocs BIGDOCS_ARGS="--size-mb 200"`` (see ``--help``). Files go under
``--dir`` (default: a temporary folder next to the repository, on /work) and are deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from relay.db.engine import make_engine
from tests.adapter_support import agency_url, write_config
from tests.bench.env import bench_env, services_from_env
from tests.bench.processes import lienthong_command
from tests.bigdocs_support import json_attachment_to_file, random_file, write_package

MB = 1_000_000
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        return self

    def kill(self) -> None:
        assert self.popen is not None
        for pid in [*_descendants(self.popen.pid), self.popen.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakMemory:
    """The highest VmHWM seen per process name (a process and its children, sampled)."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}

    def sample(self, procs: list[Proc]) -> None:
        for p in procs:
            if p.popen is None or p.popen.poll() is not None:
                continue
            for i, pid in enumerate([p.popen.pid, *_descendants(p.popen.pid)]):
                key = p.name if i == 0 else f"{p.name} (child {pid})"
                self.peaks[key] = max(self.peaks.get(key, 0), _vm_hwm_kib(pid))


def _cp_seconds(source: Path, target: Path) -> float:
    start = time.monotonic()
    subprocess.run(["cp", str(source), str(target)], check=True)
    subprocess.run(["sync", str(target)], check=True)
    seconds = time.monotonic() - start
    target.unlink()
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bigdocs", description=__doc__)
    p.add_argument("--size-mb", type=int, default=200, help="attachment size in MB (10^6)")
    p.add_argument("--recipients", type=int, default=1)
    p.add_argument("--kill", choices=["relay", "adapter"], default=None)
    p.add_argument("--chunk-mb", type=int, default=1, choices=[1, 2, 3, 4])
    p.add_argument(
        "--chunk-window",
        type=int,
        default=None,
        help="the adapters' chunk_window (default: theirs)",
    )
    p.add_argument("--dir", type=Path, default=None)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--output", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    size = args.size_mb * MB
    base = Path(tempfile.mkdtemp(prefix="bigdocs-", dir=args.dir or REPO.parent))
    free = shutil.disk_usage(base).free
    need = int(size * (3.5 + 2.4 * args.recipients))
    if free < need:
        print(f"not enough disk at {base}: {free} bytes free, about {need} needed")
        return 2
    try:
        return _run(args, size, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(args: argparse.Namespace, size: int, base: Path) -> int:
    services = services_from_env()
    with bench_env(services, 1 + args.recipients, 0) as env:
        original = base / "scan.bin"
        digest = random_file(original, size)
        cp = _cp_seconds(original, base / "scan.copy")
        relay_env = {
            **os.environ,
            **env.relay_env(),
            "LIENTHONG_LOG_LEVEL": "info",
            "LIENTHONG_METRICS_ADDR": "",  # no port shared with other relays
        }
        relay = Proc("relay", [*lienthong_command(), "relay", "run"], relay_env, base / "relay.log")
        adapters: list[Proc] = []
        roots: list[Path] = []
        for code, password in env.senders:
            folder = base / code
            config = write_config(
                folder,
                code,
                agency_url(env.settings),
                password,
                format="json",
                chunk_bytes=args.chunk_mb * 1024 * 1024,
                chunk_retry_seconds=5.0,
                **({"chunk_window": args.chunk_window} if args.chunk_window else {}),
            )
            argv = [*lienthong_command(), "adapter", "run", "--config", str(config)]
            adapters.append(Proc(f"adapter {code}", argv, dict(os.environ), folder / "adapter.log"))
            roots.append(folder / "root")
        sender, recipients = env.sender_codes[0], env.sender_codes[1:]
        procs = [relay, *adapters]
        for proc in procs:
            proc.start()
        peaks = PeakMemory()
        engine = make_engine(env.settings.database_url, pool_size=1)
        try:
            _wait(lambda: all((r / "outbox").is_dir() for r in roots), 60, "adapters start")
            time.sleep(2)
            package = base / ".package.edxml"
            write_package(package, original, sender=sender, recipients=recipients, number="9001")
            package_bytes = package.stat().st_size
            disk_before = _hub_disk(engine)
            start = time.monotonic()
            os.rename(package, roots[0] / "outbox" / "cong-van-9001.edxml")
            killed = False
            while True:
                peaks.sample(procs)
                if args.kill and not killed and _kill_due(args.kill, engine, roots[1], size):
                    # relay: mid-upload (a third at the hub); adapter: the first recipient's,
                    # mid-assembly (a third of the attachment written into its parts/)
                    victim = relay if args.kill == "relay" else adapters[1]
                    victim.kill()
                    print(
                        f"SIGKILLed {victim.name} at {time.monotonic() - start:.1f}s: "
                        f"{_hub_bytes(engine)} bytes at the hub, "
                        f"{_assembled_bytes(roots[1])} in the recipient's parts/"
                    )
                    time.sleep(1)
                    victim.start()
                    killed = True
                if _arrived(roots, recipients):
                    break
                if time.monotonic() - start > args.timeout:
                    raise SystemExit("timed out; logs in " + str(base))
                for proc in procs:
                    assert proc.popen is not None
                    if proc.popen.poll() is not None:
                        raise SystemExit(
                            f"{proc.name} exited; log:\n{proc.log.read_text()[-3000:]}"
                        )
                time.sleep(0.5)
            seconds = time.monotonic() - start
            peaks.sample(procs)
            time.sleep(5)  # a second copy or a second 01 would show by now
            exact = []
            for root in roots[1:]:
                [document] = list((root / "inbox" / "documents").glob("*.json"))
                copy = base / "received.bin"
                fields = json_attachment_to_file(document, copy)
                same = (
                    subprocess.run(["cmp", str(original), str(copy)], check=False).returncode == 0
                )
                exact.append(same and fields.get("sha256") == digest)
                copy.unlink()
            with engine.connect() as conn:
                hub = conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(length), 0),"
                        " pg_total_relation_size('blob_chunks') FROM blob_chunks"
                    )
                ).one()
                delivered = conn.execute(
                    text("SELECT state, count(*) FROM deliveries GROUP BY state ORDER BY state")
                ).all()
            disk_after = _hub_disk(engine)
        finally:
            for proc in procs:
                proc.stop()
            engine.dispose()
        statuses = _statuses_01(roots[0])
        result: dict[str, Any] = {
            "attachment_bytes": size,
            "package_bytes": package_bytes,
            "recipients": len(recipients),
            "killed": args.kill,
            "seconds": round(seconds, 1),
            "MB_per_s": round(size / MB / seconds, 1),
            # a fan-out moves the attachment once per recipient
            "delivered_MB_per_s": round(size * len(recipients) / MB / seconds, 1),
            "cp_seconds": round(cp, 2),
            "cp_MB_per_s": round(size / MB / cp, 1),
            "byte_exact": exact,
            "documents_per_recipient": [
                len(list((r / "inbox" / "documents").glob("*.json"))) for r in roots[1:]
            ],
            "status_01_received": statuses,
            "hub_chunks": hub[0],
            "hub_chunk_bytes": int(hub[1]),
            "hub_table_bytes_on_disk": int(hub[2]),
            # the attachment is stored once, whatever the number of recipients
            "hub_copies_of_the_attachment": round(int(hub[1]) / size, 3),
            "hub_bytes_on_disk_before": disk_before,
            "hub_bytes_on_disk_after": disk_after,
            "deliveries_by_state": {str(r[0]): int(r[1]) for r in delivered},
            "vm_hwm_mb": {k: round(v / 1024, 1) for k, v in sorted(peaks.peaks.items())},
        }
        print(json.dumps(result, indent=2))
        if args.output:
            args.output.write_text(json.dumps(result, indent=2))
        ok = all(exact) and statuses == len(recipients)
        ok = ok and all(n == 1 for n in result["documents_per_recipient"])
        ok = ok and max(peaks.peaks.values()) < 300 * 1024
        return 0 if ok else 1


def _hub_disk(engine: Any) -> dict[str, int]:
    """``pg_total_relation_size`` (table, TOAST and indexes) of the hub's two big tables."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_total_relation_size('blob_chunks'), pg_total_relation_size('documents')"
            )
        ).one()
    return {"blob_chunks": int(row[0]), "documents": int(row[1])}


def _hub_bytes(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT coalesce(sum(length), 0) FROM blob_chunks")).scalar_one()
        )


def _assembled_bytes(root: Path) -> int:
    parts = root / ".lienthong-blobs" / "parts"
    return sum(p.stat().st_size for p in parts.glob("*.part")) if parts.is_dir() else 0


def _kill_due(kill: str, engine: Any, recipient_root: Path, size: int) -> bool:
    if kill == "relay":
        return _hub_bytes(engine) > size // 3
    return _assembled_bytes(recipient_root) > size // 3


def _arrived(roots: list[Path], recipients: list[str]) -> bool:
    for root in roots[1:]:
        folder = root / "inbox" / "documents"
        if not folder.is_dir() or not any(folder.glob("*.json")):
            return False
    return _statuses_01(roots[0]) == len(recipients)


def _statuses_01(root: Path) -> int:
    folder = root / "inbox" / "statuses"
    if not folder.is_dir():
        return 0
    count = 0
    for path in folder.glob("*.json"):
        try:
            if json.loads(path.read_text()).get("status_code") == "01":
                count += 1
        except (OSError, ValueError):
            continue
    return count


def _wait(probe: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
