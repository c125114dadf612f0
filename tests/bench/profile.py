"""Where the relay's time goes: a summary of py-spy's raw (collapsed-stack) output.

``python -m tests.bench.profile FILE.txt`` prints the functions with the most samples, both
self (the leaf of the stack) and inclusive (anywhere in the stack, counted once per stack).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_key(frame: str) -> str:
    """``function (file:line)`` -> ``function (short/file)``: lines of one function merged."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


@dataclass(frozen=True)
class Profile:
    total: int
    self_samples: Counter[str]
    inclusive: Counter[str]


def summarize(lines: Iterable[str]) -> Profile:
    """Aggregate ``stack count`` lines (frames separated by ``;``, root first)."""
    total = 0
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_key(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for key in set(frames):
            incl[key] += count
    return Profile(total, own, incl)


def render(profile: Profile, top: int = 25) -> str:
    out = [f"{profile.total} samples"]
    for title, counter in (("self", profile.self_samples), ("inclusive", profile.inclusive)):
        out.append(f"\n-- {title} --")
        for key, n in counter.most_common(top):
            out.append(f"{100.0 * n / max(1, profile.total):6.1f}%  {key}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.bench.profile FILE.txt [TOP]", file=sys.stderr)
        return 2
    top = int(argv[1]) if len(argv) > 1 else 25
    text = Path(argv[0]).read_text(errors="replace").splitlines()
    print(render(summarize(text), top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
