"""Timeline event kinds (``events.kind``): every kind the relay and its retry worker record,
defined once here and imported wherever one is written or queried (SQL included), so a kind is
spelled in one place (DESIGN §2, the timeline ``lienthong trace`` shows).
"""

from __future__ import annotations

from typing import Final

from schemas import BusinessType

#: Not stored: ``lienthong trace`` and the console show the submission as a timeline's first
#: event under this kind.
SUBMITTED: Final = "submitted"
#: The broker confirmed a copy (pending → queued).
QUEUED: Final = "queued"
#: A status about a delivery (its code and who sent it are in the detail).
STATUS: Final = "status"
#: A later document revoked, updated or replaced this one (added to the earlier deliveries).
REVOKED: Final = "revoked"
UPDATED: Final = "updated"
REPLACED: Final = "replaced"

#: Phụ lục VI III.1.h: a possible duplicate of an earlier document (:mod:`relay.duplicates`).
DUPLICATE: Final = "duplicate"
#: Decree 30 deadlines: a delivery's 01 or 03 is overdue (:mod:`relay.deadlines`).
OVERDUE: Final = "overdue"

# The retry worker (relay/retry): a copy the broker or the recipient's adapter returned.
RETURNED: Final = "returned"
RETRY_SCHEDULED: Final = "retry_scheduled"
RETRY_HELD: Final = "retry_held"
RETRY_PUBLISHED: Final = "retry_published"
RETURN_IGNORED: Final = "return_ignored"
#: Retries used up: the delivery is ``failed`` and the sender told.
FAILED: Final = "failed"
DESTINATION_DOWN: Final = "destination_down"
DESTINATION_UP: Final = "destination_up"
PROBE_PUBLISHED: Final = "probe_published"
#: An operator sent a delivery again (``lienthong resend``).
RESENT: Final = "resent"

#: The event a later change to a document adds to the earlier document's deliveries.
CHANGE_EVENT: Final[dict[BusinessType, str]] = {
    BusinessType.REVOKE: REVOKED,
    BusinessType.UPDATE: UPDATED,
    BusinessType.REPLACE: REPLACED,
}
