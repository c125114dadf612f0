"""Decree 30/2020 deadlines: when a delivery's 01 (Đã đến) and 03 (Đã tiếp nhận) are due.

Decree 30/2020/NĐ-CP (Điều 21, Phụ lục VI) asks the recipient to notify the sender the day it
receives a document, and urgent documents (``Priority`` 1 Khẩn, 2 Thượng khẩn, 3 Hỏa tốc,
4 Hỏa tốc hẹn giờ) to be handled at once. The hub gives each delivery two due times:

- urgent: both within ``LIENTHONG_URGENT_DEADLINE_SECONDS`` (default 900) of delivery;
- others: by the end of the working day after the day of delivery, on the Vietnamese calendar
  (Asia/Ho_Chi_Minh; weekends and public holidays from the ``holidays`` library, plus the
  Government's announced extra days off and make-up working days, ``LIENTHONG_EXTRA_HOLIDAYS``
  and ``LIENTHONG_MAKEUP_WORKING_DAYS``), ending at ``LIENTHONG_WORKDAY_END`` (17:00).

"Delivery" is when the hub accepted the document for that recipient (``deliveries.created_at``):
the copy is in the recipient's inbox within moments, and a recipient whose adapter is down is
late all the same. :mod:`.calendar` is pure; :mod:`.job` fills the due times (the relay's hot
path does not compute calendars), finds what is overdue and sends the sender one ``overdue``
receipt per delivery; :mod:`.queries` backs ``lienthong overdue``.
"""
