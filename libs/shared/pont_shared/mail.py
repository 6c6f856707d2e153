"""Email out of Pont, through the SMTP server of `PONT_SMTP_URL`: family notices, and in development the
families' sign-in links. One function, so every sender speaks to the server the same way."""
from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

Post = Callable[[str, str, str], None]   # post(recipient, subject, body)


def smtp_poster(url: str, sender: str) -> Post | None:
    """`post(recipient, subject, body)` through `url` (`smtp://host:port`, or `smtps://user:password@host:port`
    over TLS, the certificate verified); None when `url` is empty (nothing can be sent)."""
    if not url:
        return None
    parts = urlsplit(url)
    secure = parts.scheme == "smtps"

    def post(recipient: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, recipient, subject
        message.set_content(body)
        connect = smtplib.SMTP_SSL if secure else smtplib.SMTP
        with connect(parts.hostname, parts.port or (465 if secure else 25), timeout=10) as server:
            if parts.username:
                server.login(unquote(parts.username), unquote(parts.password or ""))
            server.send_message(message)

    return post
