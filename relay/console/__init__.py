"""The web console (issue 19): where a văn thư sees where each document stands and an operator
repairs what failed.

``lienthong console run`` serves server-rendered pages (Starlette, Jinja2 templates shipped in
this package, a few lines of vanilla JavaScript for live updates; no front-end build step). It
reads the relay's settings (``relay/config.py``) and its database, and asks RabbitMQ's management
API for backlogs.

Choices the design leaves open, made here:

- **Who sees what** (``roles.py``, ``scope.py``). An operator and an auditor see every document;
  a clerk sees the submissions sent by its agency or a unit it hosts, and those addressed to
  them. On a document it received, a clerk sees only its own recipients' rows (the other
  recipients are another agency's business); on one it sent, all of them. Anything outside a
  user's view answers 404, exactly as a document that does not exist.
- **Sessions** are signed cookies (itsdangerous), ``HttpOnly``, ``SameSite=Lax``, ``Secure``
  when the console is reached over HTTPS, valid for ``LIENTHONG_CONSOLE_SESSION_HOURS``. The
  user row is read on every request, so a disabled user is out at once. The signing key is
  ``LIENTHONG_CONSOLE_SECRET``; without it a random key is made at start (sessions then end
  when the console restarts).
- **CSRF**: each session carries a random token; every form that changes something sends it
  back, and a POST without the right one is refused (403) before anything happens. The login
  form has no session yet: a login POST whose ``Origin`` is another site is refused instead.
- **Login rate limit** (``ratelimit.py``): after 5 failed attempts for one user name, or 20
  from one client address, within 5 minutes, further attempts answer 429 until the window
  has passed. It is per console process (in memory).
- **Audit** (``audit.py``): every operator action (resend, suspend, resume) is written with
  who, what, when, the outcome, and the client address, also when it fails.
- **Live document page**: the page asks ``/live/documents/{id}?v=VERSION`` every 3 s while it
  is visible; the answer is 204 when nothing changed (a cheap query on event ids), otherwise
  the recipients' rows to swap in. No page reload, no storm when many pages are open.
- **Headers** (``headers.py``): số/ký hiệu, Priority and the dates are not columns of
  ``documents``; the console reads them from each stored submission once and keeps them in
  ``console_document_headers``, so they can be searched.
- **Overdue** (``deadlines.py``): a recipient that has not finished (06) or refused (02) a
  document past the document's ``DueDate`` (hạn xử lý) is marked overdue.
"""
