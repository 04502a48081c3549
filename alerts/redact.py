"""Keeping apprise URLs, their secrets and recipients' addresses out of every log line.

An apprise URL is a credential: ``mailto://user:password@host?to=…``, ``json://host/hook/<token>``,
``dingtalk://<token>/``. Apprise itself logs URLs (``Loaded … URL``, ``… POST URL: https://…``
with the token in the path, ``Unparseable URL`` with the password half masked), urllib3 logs
every request's path and query at DEBUG, and an exception's text may hold the URL. Our own
lines name only the scheme, but those lines are not ours.

So a :class:`Redactor` sits as a filter on the loggers a delivery runs through (apprise's,
urllib3's, the delivery module's own) and rewrites every record before any handler sees it,
at every level, whoever added the handler (the CLI's, pytest's, a handler on ``apprise``
itself, apprise's own log capture whose text becomes a delivery record's ``detail``):

- the URLs this process sends to and each secret part of them (password, user, path segments,
  query values, in plain and %-encoded forms) become ``<secret>``;
- anything else shaped like a URL becomes ``scheme://<redacted>``, an e-mail address
  ``<address>``, an HTTP request line's target ``<path>``;
- the exception text is rendered and rewritten the same way (``exc_info`` is dropped: the
  traceback stays, as text).

A logger's filter runs only for records made on that very logger, not its children, hence the
list of names in :data:`GUARDED_LOGGERS`.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

# Apprise logs through the one "apprise" logger; requests sends through urllib3, whose modules
# each log on their own logger; the last is ours (defence in depth: its lines name schemes).
GUARDED_LOGGERS = (
    "apprise",
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "ecowatch.alerts.delivery",
)

# Shorter pieces are not redacted on their own (a 2-letter path segment would blank every
# word that holds it); the whole URL still is. A login or password is taken from 3
# characters; a path segment or query value (a token, an address) from 6, so that a
# ``/hook/`` or ``?format=text`` does not blank those words in every apprise line.
MIN_CREDENTIAL = 3
MIN_TOKEN = 6

_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://[^\s\"'<>]+")
_ADDRESS = re.compile(r"[\w.+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")
_REQUEST_LINE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \S+ HTTP/")
_URL_FIELD = re.compile(r"\burl: /\S*")  # urllib3's "Max retries exceeded with url: /path?q"
_USERINFO = re.compile(r"[^\s/@:\"']+:[^\s/@\"']*@")  # user:password@ outside a full URL


def secret_parts(url: str) -> set[str]:
    """The URL, and every part of it that may be a secret, as written and decoded."""
    parts = {url}
    try:
        split = urlsplit(url)
        credentials = [split.username, split.password, split.netloc.rpartition("@")[0]]
        tokens = [*split.path.split("/"), *(v for _, v in parse_qsl(split.query))]
    except ValueError:  # not parseable as a URL: the whole string is all we know
        return parts
    for pieces, shortest in ((credentials, MIN_CREDENTIAL), (tokens, MIN_TOKEN)):
        for piece in filter(None, pieces):
            for form in {piece, unquote(piece), quote(unquote(piece), safe="")}:
                if len(form) >= shortest:
                    parts.add(form)
    return parts


class Redactor(logging.Filter):
    """Rewrites records so that no URL, secret or address survives; never drops one."""

    def __init__(self) -> None:
        super().__init__()
        # Replaced whole, never changed in place: apprise logs from executor threads.
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def know(self, urls: Iterable[str]) -> None:
        """Remember the secrets of URLs this process sends to (their parts, longest first)."""
        new = set().union(*(secret_parts(u) for u in urls))
        with self._lock:
            if new <= set(self._secrets):
                return
            merged = set(self._secrets) | new
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        text = _URL.sub(lambda m: f"{m['scheme']}://<redacted>", text)
        text = _REQUEST_LINE.sub(lambda m: f"{m[1]} <path> HTTP/", text)
        text = _URL_FIELD.sub("url: <path>", text)
        for secret in self._secrets:  # what is left of them outside a URL's shape
            if secret in text:
                text = text.replace(secret, "<secret>")
        text = _USERINFO.sub("<userinfo>@", text)
        return _ADDRESS.sub("<address>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what can be kept, args unformatted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.scrub(message), ()
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info, record.exc_text = None, self.scrub(text)
        elif record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


REDACTOR = Redactor()
_guarded: set[str] = set()
_guard_lock = threading.Lock()


def guard_logs(urls: Iterable[str] = ()) -> Redactor:
    """Put the process's redactor on every guarded logger (once), and teach it ``urls``."""
    with _guard_lock:
        for name in GUARDED_LOGGERS:
            if name not in _guarded:
                logging.getLogger(name).addFilter(REDACTOR)
                _guarded.add(name)
    REDACTOR.know(urls)
    return REDACTOR
