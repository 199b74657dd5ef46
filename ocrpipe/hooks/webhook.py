"""WEBHOOK_URL: the event's JSON posted, signed as the Standard Webhooks convention says (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``), so a
receiver can check it came from ocrpipe and was not replayed. A redirect is not followed (it would send
the event, and where it goes, elsewhere); every wait is bounded by WEBHOOK_TIMEOUT_SECONDS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ssl
from urllib.parse import urlsplit

from ocrpipe import __version__
from ocrpipe.hooks.command import HookResult

MAX_ANSWER_BYTES = 64 * 1024  # of the receiver's answer, read only to let the connection end cleanly


def signature(secret: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value (one ``v1`` signature)."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode("ascii")


def shown_url(url: str) -> str:
    """The address for logs: scheme, host and port only (a path or query may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def post_event(url: str, *, event_id: str, body: bytes, secret: bytes | None, timeout: float,
               timestamp: int) -> HookResult:
    """POST the event; a 2xx answer means delivered."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Content-Type": "application/json", "User-Agent": f"ocrpipe/{__version__}",
               "webhook-id": event_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = signature(secret, event_id, timestamp, body)
    try:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_ANSWER_BYTES)
        status, location = response.status, response.getheader("Location")
    except TimeoutError:
        return HookResult(False, f"{shown_url(url)} did not answer within WEBHOOK_TIMEOUT_SECONDS={timeout:g}")
    except (OSError, http.client.HTTPException) as exc:
        return HookResult(False, f"{shown_url(url)}: {type(exc).__name__}: {exc}")
    finally:
        conn.close()
    if 200 <= status < 300:
        return HookResult(True, "")
    if 300 <= status < 400:
        return HookResult(False, f"{shown_url(url)} answered {status}, a redirect (to {str(location)[:200]}), "
                                 "which is not followed: set WEBHOOK_URL to where it points")
    return HookResult(False, f"{shown_url(url)} answered {status}")
