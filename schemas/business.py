"""edXML business types (``BussinessDocType``)."""

from __future__ import annotations

from enum import IntEnum


class BusinessType(IntEnum):
    """What a document package does: a new document or a change to an earlier one."""

    NEW = 0  # văn bản mới
    REVOKE = 1  # thu hồi
    UPDATE = 2  # cập nhật
    REPLACE = 3  # thay thế

    @property
    def description(self) -> str:
        return {0: "Văn bản mới", 1: "Thu hồi", 2: "Cập nhật", 3: "Thay thế"}[self.value]
