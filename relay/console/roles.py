"""Console users and what each role may do (pure rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

OPERATOR: Final = "operator"
CLERK: Final = "clerk"
AUDITOR: Final = "auditor"
ROLES: Final = (OPERATOR, CLERK, AUDITOR)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    agency: str | None  # a clerk's agency; None for operators and auditors
    disabled: bool = False

    @property
    def sees_everything(self) -> bool:
        """Operators and auditors see every document; a clerk only its agency's."""
        return self.role in (OPERATOR, AUDITOR)

    @property
    def may_act(self) -> bool:
        """Only operators resend, suspend and resume."""
        return self.role == OPERATOR

    @property
    def watches_the_hub(self) -> bool:
        """Failures, agencies and the audit log are the operators' and auditors' pages."""
        return self.role in (OPERATOR, AUDITOR)
