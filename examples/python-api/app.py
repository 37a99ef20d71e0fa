# A small HTTP API run as a prisn deployment: prisn hands each instance its
# own PORT and names it in PRISN_INSTANCE; /healthz is the health check, and
# /version answers with VERSION (set with -e) and the version of the
# dependency requirements.txt installs, so a rolling update can be watched.
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version

import humanize  # noqa: F401  (from requirements.txt: installed once into a cached venv)

VERSION = os.environ.get("VERSION", "v1")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = {"ok": True}
        elif self.path == "/version":
            body = {"version": VERSION, "humanize": version("humanize")}
        else:
            body = {"hello": "world", "instance": os.environ.get("PRISN_INSTANCE")}
        data = (json.dumps(body) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(self.address_string(), fmt % args, flush=True)


if __name__ == "__main__":
    print("listening on", os.environ["PORT"], flush=True)
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
