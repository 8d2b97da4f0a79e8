"""A git smart-HTTP server on 127.0.0.1 for the credential-helper test:
`git http-backend` behind HTTP authentication that accepts only the token
in TOKEN_FILE (read at each request, so the test can change it): as HTTP
Basic's password, or with SCHEME `bearer` as `Authorization: Bearer` only
(challenging with Bearer alone, as a forge that takes only OAuth tokens
does).

    git_server.py PROJECT_ROOT TOKEN_FILE [basic|bearer]   # prints its port, then serves
"""
import base64
import http.server
import os
import subprocess
import sys

ROOT, TOKEN_FILE = sys.argv[1], sys.argv[2]
SCHEME = sys.argv[3] if len(sys.argv) > 3 else "basic"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body):
        expected = open(TOKEN_FILE).read().strip()
        auth = self.headers.get("Authorization", "")
        user = password = ""
        if SCHEME == "basic" and auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        elif SCHEME == "bearer" and auth.startswith("Bearer "):
            password = auth[7:]
        if not expected or password != expected:
            self.send_response(401)
            challenge = 'Basic realm="forge"' if SCHEME == "basic" else 'Bearer realm="forge"'
            self.send_header("WWW-Authenticate", challenge)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=ROOT, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), REMOTE_USER=user)
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, check=False).stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, payload = out.partition(sep)
        status, headers = 200, []
        for line in head.decode().splitlines():
            key, _, value = line.partition(": ")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.answer(b"")

    def do_POST(self):
        self.answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
