"""``lienthong demo``: the end-to-end scenario of the README, with real processes and folders."""

from __future__ import annotations

from lienthong.demo.command import demo

__all__ = ["demo"]
