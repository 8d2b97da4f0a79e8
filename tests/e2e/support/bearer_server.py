"""An HTTP server on 127.0.0.1 that accepts only `Authorization: Bearer T`
where T is the content of TOKEN_FILE (read at each request), standing in
for a Kubernetes API server: GET /version answers a version object.

    bearer_server.py TOKEN_FILE CERT KEY    # prints its port, then serves https

(kubectl sends no credentials over plain http, so it is https with a
certificate the test makes.)
"""
import http.server
import json
import ssl
import sys

TOKEN_FILE, CERT, KEY = sys.argv[1], sys.argv[2], sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        expected = open(TOKEN_FILE).read().strip()
        if not expected or self.headers.get("Authorization", "") != "Bearer " + expected:
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
            self.send_response(401)
        else:
            body = json.dumps({"major": "1", "minor": "28", "gitVersion": "v1.28.0-tokend-stub"})
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
