"""Secrets out of messages: database URLs, webhook URLs and the errors that quote them.

A password may hold any character, and a URL whose password holds ``@``, ``#``, ``/`` or
``?`` is split differently by every library: SQLAlchemy ends the password at the first
``@``, so psycopg2 then reports 'could not translate host name "ss#S3cret@host"'. Nothing
here parses a URL the way a driver would: everything between ``://`` and the last ``@``
is the credentials, and any piece of them found in a message is masked.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"
# A URL quoted in a message: its credentials run from "://" to the last "@" of the word.
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][\w+.-]*://)([^\s\"'<>()]*)@")
_PASSWORD_PARAMETER = re.compile(r"(password=)([^&\s\"']*)", re.IGNORECASE)
# Where a parser may take the credentials to end.
_SEPARATORS = re.compile(r"[@#/?:]")


def redact_url(url: str) -> str:
    """``url`` with its password masked (``postgresql://u:***@host:5432/db``), whatever the
    password holds, and for URLs no library can parse too."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # not a URL: keep only what follows the last "@"
        return _mask_parameters(url.rsplit("@", 1)[-1])
    if "@" in rest:
        credentials, host = rest.rsplit("@", 1)
        rest = f"{_shown_credentials(credentials)}@{host}"
    return _mask_parameters(f"{scheme}://{rest}")


def redact_text(text: str, url: str | None) -> str:
    """``text`` (an error, a log line) with every piece of ``url``'s credentials masked, and
    the credentials of any URL it quotes."""
    credentials = _credentials(url or "")
    if credentials:
        password = credentials.split(":", 1)[1] if ":" in credentials else ""
        for secret in sorted({credentials, password, unquote(password)} - {""}, key=len, reverse=True):
            text = text.replace(secret, MASK)
        # A parser that ended the credentials early reports the rest as part of the host.
        for cut in sorted({m.end() for m in _SEPARATORS.finditer(credentials)}):
            if credentials[cut:]:
                text = text.replace(credentials[cut:] + "@", MASK + "@")
    for secret in (m.group(2) for m in _PASSWORD_PARAMETER.finditer(url or "")):
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + _shown_credentials(m.group(2)) + "@", text)
    return _mask_parameters(text)


def first_line(exc: BaseException, url: str | None) -> str:
    """An exception as one masked line (drivers add hints on the lines after)."""
    text = redact_text(str(exc).strip() or type(exc).__name__, url)
    return text.splitlines()[0][:300]


def origin_of(url: str) -> str:
    """Scheme, host and port: all that may be logged of a URL whose path or query holds a
    token (Slack's and Feishu's webhook URLs carry their secret in the path)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    return f"{parts.scheme}://{parts.hostname}{port}" if parts.hostname else MASK


def redact_request_error(text: str, url: str) -> str:
    """``text`` of an HTTP library's exception (which quotes the URL or the path it asked
    for) with everything of ``url`` but its host masked, for URLs no library can parse too."""
    _, sep, rest = url.partition("://")
    rest = rest if sep else url
    cut = re.search(r"[/?#]", rest)
    target = rest[cut.start():] if cut else ""
    pieces = {url, rest, target, *re.split(r"[?#]", target), _credentials(url)}
    for piece in sorted((p for p in pieces if len(p) > 1), key=len, reverse=True):
        text = text.replace(piece, MASK).replace(unquote(piece), MASK)
    return re.sub(r"(with url: )\S+", rf"\1{MASK}", text)


def _credentials(url: str) -> str:
    _, sep, rest = url.partition("://")
    return rest.rsplit("@", 1)[0] if sep and "@" in rest else ""


def _shown_credentials(credentials: str) -> str:
    """The user name alone when it is plainly one; otherwise nothing of the credentials."""
    user, colon, _ = credentials.partition(":")
    if _SEPARATORS.search(user) or user == MASK:
        return MASK
    return f"{user}:{MASK}" if colon else user


def _mask_parameters(text: str) -> str:
    return _PASSWORD_PARAMETER.sub(rf"\1{MASK}", text)


def mask_engine_errors(engine, url: str) -> None:
    """Mask ``url``'s credentials in every error the engine raises (psycopg2 quotes the host
    it parsed, which holds part of a password with an ``@`` in it), keeping the exception types."""
    from sqlalchemy import event

    def scrub(context) -> None:
        for error in (context.original_exception, context.sqlalchemy_exception):
            if error is not None:
                error.args = tuple(redact_text(a, url) if isinstance(a, str) else a for a in error.args)

    event.listen(engine, "handle_error", scrub)
