# The API of the manifest's system: GET / greets, /healthz is the health check.
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = "ok" if self.path == "/healthz" else os.environ["GREETING"] + " from " + os.environ["PRISN_INSTANCE"]
        self.send_response(200)
        self.end_headers()
        self.wfile.write((body + "\n").encode())


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
