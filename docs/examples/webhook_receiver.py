"""A WEBHOOK_URL receiver that checks ocrpipe's signature (Standard Webhooks), then prints each event.

    WEBHOOK_SECRET=whsec_... python webhook_receiver.py      (then WEBHOOK_URL=http://127.0.0.1:8765/)

It answers 401 to a request whose signature does not match or whose timestamp is over 5 minutes off, and
204 to a good one. An event delivered twice (a retry after a lost answer) has the same webhook-id.
"""

import base64
import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["WEBHOOK_SECRET"]
KEY = base64.b64decode(SECRET[len("whsec_"):]) if SECRET.startswith("whsec_") else SECRET.encode()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        event_id, stamp = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        mac = hmac.new(KEY, f"{event_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        given = self.headers.get("webhook-signature", "").split()  # space-separated, one per key
        if abs(time.time() - int(stamp)) > 300 or not any(hmac.compare_digest(expected, g) for g in given):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        print(event_id, event["type"], event["data"]["source"], event["data"].get("output"), flush=True)
        self.send_response(204)
        self.end_headers()


server = HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8765"))), Receiver)
print("listening on port", server.server_port, flush=True)
server.serve_forever()
