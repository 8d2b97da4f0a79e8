"""A stand-in for the Docker daemon's API on 127.0.0.1, for driving the
real `docker` CLI (`DOCKER_HOST=tcp://127.0.0.1:PORT`) through its
credential helper: the CLI asks the helper, then hands the daemon what it
got in `X-Registry-Auth` (a pull) or the request body (a login), which is
what the test reads. Every login succeeds and every pull is "done"; no
registry is asked.

    docker_daemon.py LOG    # prints its port, then serves

Each request the CLI sends is one JSON line in LOG:
{"method", "path", "auth"}, `auth` the decoded credentials (an object,
`{}` for none) or null when the request carried none.
"""
import base64
import http.server
import json
import sys

LOG = sys.argv[1]


def decoded(header):
    """X-Registry-Auth: base64url of a JSON object, padding optional."""
    if header is None:
        return None
    text = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    return json.loads(text or "{}")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, auth):
        with open(LOG, "a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path, "auth": auth}) + "\n")

    def send(self, code, body, content_type="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        # The CLI negotiates the API version from the ping's header.
        self.send_header("Api-Version", "1.47")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.record(None)
        self.send(200, "OK", "text/plain")

    def do_GET(self):
        self.record(None)
        if self.path.endswith("/_ping"):
            self.send(200, "OK", "text/plain")
        else:
            self.send(404, json.dumps({"message": "not in this stand-in"}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].endswith("/auth"):
            self.record(json.loads(body or b"{}"))
            self.send(200, json.dumps({"Status": "Login Succeeded"}))
        elif "/images/create" in self.path:
            self.record(decoded(self.headers.get("X-Registry-Auth")))
            self.send(200, json.dumps({"status": "done"}) + "\n")
        else:
            self.record(None)
            self.send(404, json.dumps({"message": "not in this stand-in"}))


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
