"""``lienthong demo``: set up a demo hub, start real processes, play the scenario, report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
from sqlalchemy import Engine

from lienthong.demo import environment as envmod
from lienthong.demo import firstrun, preflight, users
from lienthong.demo import scenario as sc
from lienthong.demo.errors import DemoFailed, ServicesUnreachable
from lienthong.demo.play import Play
from lienthong.demo.processes import Supervisor, log_tail
from lienthong.demo.report import DeliveryRow, mismatches, read_deliveries, render_table
from lienthong.demo.timeline import Timeline
from lienthong.logs import configure_logging
from relay.broker.management import ManagementClient
from relay.config import Settings, load_settings
from relay.db.engine import make_engine
from relay.errors import LienthongError, ServiceUnavailable
from relay.setup import run_setup
from schemas import topology as t

#: A file in the work directory that says the demo made it, so a rerun may wipe it.
MARKER = ".lienthong-demo"


@dataclass(frozen=True)
class Options:
    vhost: str
    database: str
    workdir: Path
    timeout: float


@click.command()
@click.option(
    "--vhost",
    default="lienthong-demo",
    show_default=True,
    envvar="LIENTHONG_DEMO_VHOST",
    help="RabbitMQ vhost the demo owns (wiped first).",
)
@click.option(
    "--database",
    default="lienthong_demo",
    show_default=True,
    envvar="LIENTHONG_DEMO_DATABASE",
    help="PostgreSQL database the demo owns (dropped first).",
)
@click.option(
    "--workdir",
    default=Path(".demo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LIENTHONG_DEMO_WORKDIR",
    help="Folders, configs and logs of the demo's agencies (wiped first).",
)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=5),
    help="Seconds the whole scenario may take before the demo gives up.",
)
def demo(vhost: str, database: str, workdir: Path, timeout: float) -> None:
    """Run the end-to-end scenario: Văn phòng Chính phủ sends a công văn to four agencies.

    Uses the RabbitMQ and PostgreSQL named by LIENTHONG_AMQP_URL, LIENTHONG_MANAGEMENT_URL and
    LIENTHONG_DATABASE_URL, but in a vhost and a database of its own. Starts the relay and one
    adapter per connected agency as real processes, plays the scenario through their folders,
    prints a timeline and the final table, stops everything and exits 0 when every delivery
    ended in its expected state.
    """
    options = Options(
        envmod.check_name("vhost", vhost),
        envmod.check_name("database", database),
        workdir,
        timeout,
    )
    # SIGINT explicitly too: a shell starting the demo in the background leaves it ignored.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        run_demo(options)
    except LienthongError as e:
        raise click.ClickException(str(e)) from e
    except KeyboardInterrupt:
        click.echo("interrupted: every process the demo started has been stopped", err=True)
        raise SystemExit(130) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(options: Options) -> None:
    settings = envmod.demo_settings(load_settings(), options.vhost, options.database)
    say = click.echo

    say("1/5  checking RabbitMQ, its management API and PostgreSQL…")
    started = time.monotonic()
    targets = preflight.endpoints(settings)
    failed = preflight.check(targets)
    amqp, management = targets[0], targets[1]
    if any(f.endpoint is management for f in failed) and not any(
        f.endpoint is amqp for f in failed
    ):
        # A fresh install: the broker runs without its management plugin; enable it if local.
        problem = firstrun.enable_management(management, settings.management_url, say)
        failed = [f for f in failed if f.endpoint is not management]
        if problem is not None:
            failed.append(problem)
    if failed:
        raise ServicesUnreachable(
            "the demo needs RabbitMQ (with its management plugin) and PostgreSQL:\n"
            + "\n".join(f.explain() for f in failed)
        )
    say(f"     all three answer ({time.monotonic() - started:.2f}s)")

    # The timeline is the demo's output; the services' own logs go to .demo/logs/.
    configure_logging("warning", "console")
    workdir = _fresh_workdir(options.workdir)
    agencies = sc.cast()
    connected = [a for a in agencies if a.host is None]

    say(f"2/5  resetting vhost {settings.vhost!r} and database {options.database!r}, setting up…")
    with ManagementClient(settings.management_url) as mgmt:
        users.refuse_foreign_users(mgmt, [a.code for a in connected], settings.vhost)
    envmod.reset(settings)
    for attempt in envmod.patiently():
        with attempt:
            run_setup(settings)  # idempotent
    supervisor = Supervisor(envmod.child_environment(settings, dict(os.environ)), workdir / "logs")
    homes = {
        a.code: envmod.prepare_home(workdir, a, settings, sc.ADAPTER_FORMAT.get(a.code, "json"))
        for a in connected
    }
    # Connected agencies one by one with `agency add --password-file`, which (re)sets the
    # RabbitMQ password (users are global: one may be left from elsewhere); the hosted units
    # with `agency import`, once their host exists.
    supervisor.run(
        "provision",
        [
            [
                "agency",
                "add",
                a.code,
                "--name",
                a.name,
                "--password-file",
                str(homes[a.code].password_file),
            ]
            for a in connected
        ],
    )
    with ManagementClient(settings.management_url) as mgmt:
        users.mark_as_the_demos(mgmt, [a.code for a in connected])
    for a in connected:
        say(f"     agency add     {a.code}  {a.name} (RabbitMQ user, inbox and outbox)")
    hosted = [a for a in agencies if a.host is not None]
    csv_path = envmod.directory_csv(workdir, hosted)
    supervisor.run("provision", [["agency", "import", str(csv_path)]])
    for a in hosted:
        say(f"     agency import  {a.code}  {a.name} (hosted by {a.host})")

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        say("3/5  starting the relay and one adapter per connected agency…")
        supervisor.start("relay", ["relay", "run"])
        console_listen = _start_console(supervisor, workdir)
        for a in connected:
            supervisor.start(
                f"adapter-{a.code}", ["adapter", "run", "--config", str(homes[a.code].config)]
            )
        _wait_ready(settings, supervisor, [a.code for a in connected], deadline=60.0)
        for child in supervisor.children:
            say(f"     {child.name:<24} pid {child.process.pid:<7}  log {child.log_path}")
        say(
            f"     web console: http://{console_listen}/  (user {DEMO_CONSOLE_USER}, password "
            f"{DEMO_CONSOLE_PASSWORD}; it stops with the demo)"
        )

        say("4/5  playing the scenario (seconds since the công văn was sent)")
        play = Play(
            agencies,
            homes,
            supervisor,
            Timeline({a.code: a.name for a in agencies}),
            deadline=time.monotonic() + options.timeout,
        )
        play.run()
        rows, problems = _settle(engine, deadline=time.monotonic() + 15.0)
    except DemoFailed as e:
        raise DemoFailed(f"{e}\nThe processes' logs are in {workdir / 'logs'}/") from e
    finally:
        # Children first, output after: printing can fail too (a closed pipe), and a second
        # Ctrl-C must not leave children behind (stopping is bounded anyway).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stopped = supervisor.stop_all()
        engine.dispose()
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        say("5/5  stopped every process the demo started:")
        for line in stopped:
            say(f"     {line}")

    say("")
    say(render_table(rows))
    (workdir / "result.json").write_text(
        json.dumps(
            {"ok": not problems, "problems": problems, "deliveries": [r.as_json() for r in rows]},
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )
    if problems:
        raise DemoFailed("deliveries not in their expected state:\n  " + "\n  ".join(problems))
    say("")
    say(
        f"every delivery is in its expected state ({time.monotonic() - started:.0f}s in all). "
        f"Folders and logs: {workdir}/"
    )
    say(f"The demo's data stay in vhost {settings.vhost!r} and database {options.database!r}:")
    say(f"  LIENTHONG_DATABASE_URL={settings.database_url} lienthong trace '{sc.DOCUMENT_ID}'")
    say(
        f"  LIENTHONG_DATABASE_URL={settings.database_url} lienthong console run   # then "
        f"http://127.0.0.1:8080/, user {DEMO_CONSOLE_USER}, password {DEMO_CONSOLE_PASSWORD}"
    )


DEMO_CONSOLE_USER = "demo"
DEMO_CONSOLE_PASSWORD = "lienthong-demo"


def _start_console(supervisor: Supervisor, workdir: Path) -> str:
    """The web console (issue 19) on the demo's data, with an operator login; its address."""
    from relay.console.listen import free_listen

    password_file = workdir / "console.secret"
    password_file.write_text(DEMO_CONSOLE_PASSWORD + "\n", encoding="utf-8")
    add = ["console", "user", "add", DEMO_CONSOLE_USER, "--role", "operator"]
    supervisor.run("provision", [[*add, "--password-file", str(password_file)]])
    listen = free_listen()
    supervisor.start("console", ["console", "run", "--listen", listen])
    return listen


def _fresh_workdir(workdir: Path) -> Path:
    """Empty ``workdir`` for this run, refusing to wipe a folder the demo did not make."""
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
        raise DemoFailed(f"{workdir} exists and was not made by the demo; choose another --workdir")
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by `lienthong demo`; wiped on its next run\n")
    return workdir


def _wait_ready(
    settings: Settings, supervisor: Supervisor, connected: list[str], deadline: float
) -> None:
    """Until the relay consumes every outbox and each adapter its inbox (seen by the broker)."""
    end = time.monotonic() + deadline
    with ManagementClient(settings.management_url) as mgmt:
        while True:
            supervisor.check_alive()
            missing = []
            for code in connected:
                for queue, who in (
                    (t.outbox_queue(code), "relay"),
                    (t.inbox_queue(code), f"adapter-{code}"),
                ):
                    try:
                        info = mgmt.get_queue(settings.vhost, queue) or {}
                    except ServiceUnavailable:  # a busy broker; asked again until the deadline
                        info = {}
                    if not info.get("consumers"):
                        missing.append((queue, who))
            if not missing:
                return
            if time.monotonic() > end:
                lines = [
                    f"no consumer on {q} after {deadline:.0f}s (expected: {w})" for q, w in missing
                ]
                silent = {w for _, w in missing}
                tails = [
                    f"the end of {c.log_path}:\n{log_tail(c.log_path)}"
                    for c in supervisor.children
                    if c.name in silent
                ]
                raise DemoFailed("\n".join(lines + tails))
            time.sleep(0.3)


def _settle(engine: Engine, deadline: float) -> tuple[list[DeliveryRow], list[str]]:
    """The deliveries once they match the expected states, or as they are at ``deadline``.

    The relay records a status before it forwards it, so this normally matches at once.
    """
    while True:
        rows = read_deliveries(engine)
        problems = mismatches(rows, sc.EXPECTED_STATES)
        if not problems or time.monotonic() > deadline:
            return rows, problems
        time.sleep(0.2)
