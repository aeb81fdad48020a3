"""A local stand-in for Postmark's e-mail API (POST /email), for anymail's real Postmark backend.

Point anymail at it with ANYMAIL_POSTMARK_API_URL=<stand-in url> and
ANYMAIL_POSTMARK_SERVER_TOKEN=<its token>. It answers like Postmark
(https://postmarkapp.com/developer/api/email-api): 200 with a MessageID for an accepted
e-mail, 401 for a wrong server token, and whatever failure a test asks for: an outage
(HTTP 5xx), a hang (the request is held until released, to kill a worker mid-send) or a late
answer (the e-mail is accepted at once and the answer comes `answer_delay` seconds later, after
the client's timeout: the outcome the client sees is unknown).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The basic-auth credentials Postmark's tracking webhook is configured with (ANYMAIL's WEBHOOK_SECRET).
WEBHOOK_SECRET = "hook-user:a-long-webhook-secret"
WEBHOOK = "/anymail/postmark/tracking/"  # where anymail receives Postmark's tracking events


@dataclass
class Accepted:
    message_id: str
    to: str
    subject: str
    text: str
    html: str
    metadata: dict
    tag: str
    at: float = 0.0  # time.monotonic() when accepted


@dataclass
class PostmarkStandIn:
    token: str = "standin-server-token"
    accepted: list[Accepted] = field(default_factory=list)
    requests: int = 0
    refused: int = 0
    outage_status: int | None = None  # answer every send with this 5xx while set
    hanging: bool = False  # hold every send until release()
    answer_delay: float = 0.0  # accept every send at once, answer this many seconds later
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    received: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> PostmarkStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = standin._answer(self.path, self.headers, body)
                try:
                    payload = json.dumps(answer).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client died while we held its request

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/"

    def anymail_env(self) -> dict[str, str]:
        """Environment for a certportal process (settings build ANYMAIL from ANYMAIL_* variables)."""
        return {
            "CERTPORTAL_EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
            "ANYMAIL_POSTMARK_SERVER_TOKEN": self.token,
            "ANYMAIL_POSTMARK_API_URL": self.url,
        }

    def anymail_settings(self) -> dict[str, str]:
        return {"POSTMARK_SERVER_TOKEN": self.token, "POSTMARK_API_URL": self.url}

    # --- failures a test can switch on and off ---

    def hang(self) -> None:
        self._released.clear()
        self.hanging = True

    def release(self) -> None:
        self.hanging = False
        self._released.set()

    def wait_for_requests(self, count: int, timeout: float = 20) -> bool:
        with self.received:
            return self.received.wait_for(lambda: self.requests >= count, timeout=timeout)

    def accepted_for(self, reminder_id: int) -> list[Accepted]:
        return [message for message in self.accepted if message.metadata.get("reminder_id") == str(reminder_id)]

    # --- Postmark's behaviour ---

    def _answer(self, path: str, headers, body: bytes) -> tuple[int, dict]:
        with self.received:
            self.requests += 1
            self.received.notify_all()
        if path.rstrip("/") != "/email":
            return 404, {"ErrorCode": 404, "Message": f"Unknown endpoint {path}"}
        if headers.get("X-Postmark-Server-Token") != self.token:
            with self._lock:
                self.refused += 1
            return 401, {"ErrorCode": 10, "Message": "The Server Token you provided in the request is invalid."}
        if self.hanging:
            self._released.wait(timeout=60)
        if self.outage_status is not None:
            with self._lock:
                self.refused += 1
            return self.outage_status, {"ErrorCode": 500, "Message": "Service unavailable (stand-in outage)."}
        message = json.loads(body)
        accepted = Accepted(
            message_id=str(uuid.uuid4()),
            to=message["To"],
            subject=message.get("Subject", ""),
            text=message.get("TextBody", ""),
            html=message.get("HtmlBody", ""),
            metadata=message.get("Metadata") or {},
            tag=message.get("Tag", ""),
            at=time.monotonic(),
        )
        with self._lock:
            self.accepted.append(accepted)
        if self.answer_delay:
            time.sleep(self.answer_delay)
        return 200, {
            "To": accepted.to,
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": accepted.message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }


def post_event(client, payload: dict, *, auth: str | None = WEBHOOK_SECRET):
    """A tracking event posted to the portal's webhook as Postmark posts it (basic auth with the secret)."""
    headers = {}
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return client.post(WEBHOOK, json.dumps(payload), content_type="application/json", **headers)


def delivery(message_id: str = "pm-1") -> dict:
    """Postmark's Delivery event for `message_id`."""
    return {
        "RecordType": "Delivery", "MessageID": message_id, "Recipient": "bob@alpha.example",
        "DeliveredAt": "2026-12-01T09:00:05Z", "Details": "Test delivery", "Tag": "expiry-30",
        "ServerID": 1, "Metadata": {"reminder_id": "1"}, "MessageStream": "outbound",
    }
