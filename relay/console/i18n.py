"""The console's words, Vietnamese first, English available (``?lang=en`` or the cookie)."""

from __future__ import annotations

from typing import Final

from relay.domain import events as ev
from relay.domain import states

VI: Final = "vi"
EN: Final = "en"
LANGUAGES: Final = (VI, EN)

#: key -> (Vietnamese, English)
MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "app": ("Trục liên thông văn bản", "Document exchange hub"),
    "login": ("Đăng nhập", "Sign in"),
    "logout": ("Đăng xuất", "Sign out"),
    "username": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "login_failed": (
        "Tên đăng nhập hoặc mật khẩu không đúng.",
        "Wrong user name or password.",
    ),
    "login_limited": (
        "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {seconds} giây.",
        "Too many failed sign-ins. Try again in {seconds} seconds.",
    ),
    "documents": ("Văn bản", "Documents"),
    "failures": ("Lỗi gửi", "Failures"),
    "agencies": ("Cơ quan", "Agencies"),
    "audit": ("Nhật ký thao tác", "Audit log"),
    "all": ("Tất cả", "All"),
    "sent": ("Văn bản đi", "Sent"),
    "received": ("Văn bản đến", "Received"),
    "search": ("Tìm kiếm", "Search"),
    "document_id": ("Mã văn bản (DocumentId)", "DocumentId"),
    "number": ("Số/Ký hiệu", "Number/notation"),
    "subject": ("Trích yếu", "Subject"),
    "counterpart": ("Cơ quan gửi/nhận", "Counterpart"),
    "date_from": ("Từ ngày", "From"),
    "date_to": ("Đến ngày", "To"),
    "state": ("Trạng thái", "State"),
    "any_state": ("Mọi trạng thái", "Any state"),
    "priority": ("Độ khẩn", "Priority"),
    "sender": ("Nơi gửi", "Sender"),
    "recipients": ("Nơi nhận", "Recipients"),
    "recipient": ("Nơi nhận", "Recipient"),
    "received_at": ("Thời điểm nhận", "Received"),
    "no_documents": ("Không có văn bản nào.", "No documents."),
    "per_day": ("Văn bản mỗi ngày (14 ngày gần nhất)", "Documents per day (last 14 days)"),
    "latest_status": ("Trạng thái mới nhất", "Latest status"),
    "timeline": ("Diễn biến", "Timeline"),
    "all_events": ("Toàn bộ sự kiện", "Every event"),
    "overdue": ("Quá hạn", "Overdue"),
    "due_date": ("Hạn xử lý", "Due date"),
    "failed_attempts": ("Số lần gửi lỗi", "Failed attempts"),
    "last_error": ("Lỗi gần nhất", "Last error"),
    "resend": ("Gửi lại", "Resend"),
    "suspend": ("Tạm ngừng", "Suspend"),
    "resume": ("Khôi phục", "Resume"),
    "submission": ("Lần gửi", "Submission"),
    "business": ("Loại nghiệp vụ", "Business type"),
    "via": ("qua", "via"),
    "live": ("Tự động cập nhật", "Updates live"),
    "destinations_down": ("Nơi nhận ngừng hoạt động", "Destinations down"),
    "down_since": ("Ngừng từ", "Down since"),
    "held": ("Đang giữ", "Held"),
    "last_probe": ("Lần thử gần nhất", "Last probe"),
    "no_failures": ("Không có văn bản gửi lỗi.", "No failed deliveries."),
    "next_attempt": ("Lần gửi tiếp", "Next attempt"),
    "backlog_inbox": ("Chờ nhận (inbox)", "Waiting in inbox"),
    "backlog_outbox": ("Chờ chuyển (outbox)", "Waiting in outbox"),
    "consumers": ("Kết nối", "Consumers"),
    "last_sent": ("Gửi gần nhất", "Last sent"),
    "last_status": ("Phản hồi gần nhất", "Last status"),
    "time_to_01": ("Trung vị đến 01", "Median to 01"),
    "time_to_03": ("Trung vị đến 03", "Median to 03"),
    "hosted_by": ("do {host} tiếp nhận hộ", "hosted by {host}"),
    "broker_unavailable": (
        "Không đọc được hàng đợi từ RabbitMQ: {error}",
        "Could not read the queues from RabbitMQ: {error}",
    ),
    "when": ("Thời điểm", "When"),
    "who": ("Người thực hiện", "Who"),
    "action": ("Thao tác", "Action"),
    "target": ("Đối tượng", "Target"),
    "outcome": ("Kết quả", "Outcome"),
    "client": ("Địa chỉ", "Client"),
    "outcome_done": ("Đã thực hiện", "Done"),
    "outcome_nothing": ("Không có gì để thay đổi", "Nothing to change"),
    "outcome_failed": ("Không thành công", "Failed"),
    "no_audit": ("Chưa có thao tác nào.", "No actions yet."),
    "not_found": ("Không tìm thấy", "Not found"),
    "not_found_text": (
        "Không có trang hoặc văn bản này, hoặc bạn không có quyền xem.",
        "There is no such page or document, or you may not see it.",
    ),
    "forbidden": ("Không được phép", "Not allowed"),
    "forbidden_text": (
        "Tài khoản của bạn không được thực hiện thao tác này.",
        "Your account may not do this.",
    ),
    "csrf_text": (
        "Biểu mẫu đã hết hạn hoặc không hợp lệ. Hãy tải lại trang và thử lại.",
        "The form has expired or is not valid. Reload the page and try again.",
    ),
    "resent_n": ("Đã gửi lại {n} văn bản.", "Resent {n} deliveries."),
    "resent_none": ("Không có gì để gửi lại.", "Nothing to resend."),
    "action_failed": ("Thao tác không thành công: {error}", "The action failed: {error}"),
    "suspended_ok": ("Đã tạm ngừng {code}.", "{code} suspended."),
    "resumed_ok": ("Đã khôi phục {code}.", "{code} resumed."),
    "role": ("Vai trò", "Role"),
    "role_operator": ("Vận hành", "Operator"),
    "role_clerk": ("Văn thư", "Clerk"),
    "role_auditor": ("Kiểm tra", "Auditor"),
    "previous": ("Trang trước", "Previous"),
    "next": ("Trang sau", "Next"),
    "language": ("English", "Tiếng Việt"),
    "invalid_date": (
        "{field}: ngày không hợp lệ, hãy nhập theo dạng năm-tháng-ngày (2026-11-30); "
        "điều kiện này đã được bỏ qua.",
        "{field}: not a date; give it as year-month-day (2026-11-30). It was left out of the "
        "search.",
    ),
    "unavailable": ("Tạm thời không truy cập được", "Temporarily unavailable"),
    "unavailable_text": (
        "Không kết nối được cơ sở dữ liệu của trục. Hãy thử lại sau ít phút; nếu vẫn lỗi, "
        "báo cho người vận hành.",
        "The hub's database cannot be reached. Try again in a few minutes; if it persists, "
        "tell the operators.",
    ),
    "agency_active": ("Hoạt động", "Active"),
    "agency_suspended": ("Tạm ngừng", "Suspended"),
    "times_note": ("Thời gian theo giờ Việt Nam (UTC+7).", "Times are Vietnam time (UTC+7)."),
    "answer_times": (
        "Thời gian phản hồi (trung vị, 30 ngày, phút)",
        "Time to answer (median, 30 days, minutes)",
    ),
}

#: Delivery states (relay/domain/states.py) as a person reads them.
STATES: Final[dict[str, tuple[str, str]]] = {
    states.PENDING: ("Chờ gửi", "Pending"),
    states.QUEUED: ("Đã chuyển", "In the inbox"),
    states.RETRYING: ("Đang gửi lại", "Retrying"),
    states.FAILED: ("Gửi lỗi", "Failed"),
    states.DELIVERED: ("Đã đến", "Delivered"),
    states.ACCEPTED: ("Đã tiếp nhận", "Registered"),
    states.ASSIGNED: ("Phân công", "Assigned"),
    states.PROCESSING: ("Đang xử lý", "Processing"),
    states.COMPLETED: ("Hoàn thành", "Completed"),
    states.REFUSED: ("Từ chối", "Refused"),
    states.RECALL_REQUESTED: ("Đề nghị lấy lại", "Take-back requested"),
    states.RECALLED: ("Đã lấy lại", "Taken back"),
}

#: edXML OtherInfo/Priority (độ khẩn).
PRIORITIES: Final[dict[int, tuple[str, str]]] = {
    0: ("Thường", "Normal"),
    1: ("Khẩn", "Urgent"),
    2: ("Thượng khẩn", "Very urgent"),
    3: ("Hỏa tốc", "Immediate"),
    4: ("Hỏa tốc hẹn giờ", "Immediate, timed"),
}

#: Timeline event kinds (the relay's event rows).
EVENTS: Final[dict[str, tuple[str, str]]] = {
    ev.SUBMITTED: ("Tiếp nhận văn bản gửi", "Submitted"),
    ev.QUEUED: ("Đã chuyển vào hộp thư nơi nhận", "Published to the recipient's inbox"),
    ev.STATUS: ("Trạng thái", "Status"),
    ev.RETURNED: ("Bị trả lại", "Returned"),
    ev.RETRY_SCHEDULED: ("Hẹn gửi lại", "Retry scheduled"),
    ev.RETRY_PUBLISHED: ("Đã gửi lại", "Published again"),
    ev.RETRY_HELD: ("Tạm giữ", "Held"),
    ev.FAILED: ("Gửi lỗi", "Failed"),
    ev.RESENT: ("Gửi lại bởi người vận hành", "Resent by an operator"),
    ev.REVOKED: ("Thu hồi", "Revoked"),
    ev.PROBE_PUBLISHED: ("Gửi thăm dò", "Probe published"),
}


class Translator:
    """``t("key", **values)``, ``t.state(...)``, ``t.priority(...)`` in one language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else VI
        self._i = 0 if self.lang == VI else 1

    def __call__(self, key: str, **values: object) -> str:
        pair = MESSAGES.get(key)
        text = pair[self._i] if pair else key
        return text.format(**values) if values else text

    def state(self, state: str) -> str:
        pair = STATES.get(state)
        return pair[self._i] if pair else state

    def priority(self, priority: int | None) -> str:
        if priority is None:
            return "—"
        pair = PRIORITIES.get(priority)
        return pair[self._i] if pair else str(priority)

    def duration(self, seconds: float | None) -> str:
        """12 giây, 3,5 phút, 2,0 giờ (12 s, 3.5 min, 2.0 h in English)."""
        if seconds is None:
            return "—"
        units = (("giây", "s"), ("phút", "min"), ("giờ", "h"))
        if seconds < 90:
            value, unit = f"{seconds:.0f}", units[0]
        elif seconds < 5400:
            value, unit = f"{seconds / 60:.1f}", units[1]
        else:
            value, unit = f"{seconds / 3600:.1f}", units[2]
        if self.lang == VI:
            value = value.replace(".", ",")
        return f"{value} {unit[self._i]}"

    def event(self, kind: str) -> str:
        pair = EVENTS.get(kind)
        return pair[self._i] if pair else kind
