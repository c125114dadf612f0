"""The fault table: one row per case (case | sent | arrived | lost | doubled | seconds | notes),
each printed when its case ends and all together at the end of the run (``conftest.py``)."""

from __future__ import annotations

from tests.chaos.scene import Tally

#: Every case's row, printed as one table at the end of the run.
TABLE: list[Tally] = []


def record(tally: Tally) -> Tally:
    TABLE.append(tally)
    print(render([tally]))
    return tally


def render(rows: list[Tally]) -> str:
    head = ("case", "sent", "arrived", "lost", "doubled", "seconds", "notes")
    cells = [
        (r.case, str(r.sent), str(r.arrived), str(r.lost), str(r.doubled), f"{r.seconds:.0f}",
         r.notes)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head) - 1)]

    def line(c: tuple[str, ...]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=False)) + " | " + c[-1]

    rule = "-+-".join("-" * w for w in widths) + "-+-" + "-" * 5
    return "\n".join([line(head), rule, *(line(c) for c in cells)])
