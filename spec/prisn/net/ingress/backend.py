"""A real HTTP/1.1 backend for the ingress specs, standard library only.

python3 backend.py NAME   prints "PORT <n>" once listening on 127.0.0.1, then serves:
  GET  /headers        the request's headers as JSON, with the backend's name
  GET  /bytes?n=N      N bytes of "x" (Content-Length); HEAD: the head alone
  POST /upload         "len=<n> sha256=<hex>" of the body (Content-Length or chunked)
  GET  /ws             a WebSocket echo (RFC 6455 handshake; text and binary
                       frames echoed unmasked; close answered and ended)

python3 backend.py --ws-client PORT HOST MESSAGE...
  connects to 127.0.0.1:PORT with Host HOST, upgrades /ws, sends each message
  as a masked text frame and prints each echo on a line; exits 0.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def read_exact(f, n):
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(f):
    b1, b2 = read_exact(f, 2)
    opcode, masked, length = b1 & 0x0F, b2 & 0x80, b2 & 0x7F
    if length == 126:
        length = struct.unpack("!H", read_exact(f, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read_exact(f, 8))[0]
    mask = read_exact(f, 4) if masked else None
    payload = read_exact(f, length)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return opcode, payload


def frame(opcode, payload, mask=False):
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/headers":
            headers = {k.lower(): v for k, v in self.headers.items()}
            headers["backend"] = NAME
            return self.reply(200, json.dumps(headers).encode(), "application/json")
        if self.path.startswith("/bytes"):
            n = int(self.path.split("n=")[1])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = b"x" * 65536
            while n > 0:
                self.wfile.write(block[: min(n, len(block))])
                n -= min(n, len(block))
            return None
        if self.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        return self.reply(200, ("%s %s" % (NAME, self.path)).encode())

    def do_HEAD(self):
        n = int(self.path.split("n=")[1]) if "n=" in self.path else 0
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()

    def do_POST(self):
        h = hashlib.sha256()
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = read_exact(self.rfile, size)
                self.rfile.readline()
                h.update(data)
                n += size
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left > 0:
                data = self.rfile.read(min(left, 65536))
                h.update(data)
                n += len(data)
                left -= len(data)
        self.reply(200, ("len=%d sha256=%s" % (n, h.hexdigest())).encode())

    def websocket(self):
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(self.headers["Sec-WebSocket-Key"]))
        self.end_headers()
        self.wfile.flush()
        try:
            while True:
                opcode, payload = read_frame(self.rfile)
                if opcode == 8:
                    self.wfile.write(frame(8, payload))
                    break
                if opcode in (1, 2):
                    self.wfile.write(frame(opcode, payload))
                    self.wfile.flush()
        except EOFError:
            pass
        self.close_connection = True


def ws_client(port, host, messages):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, key)).encode())
    f = s.makefile("rb")
    status = f.readline()
    if b" 101 " not in status:
        print("no upgrade: " + status.decode().strip())
        return 1
    accept = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "sec-websocket-accept":
            accept = value.strip()
    if accept != accept_key(key):
        print("bad accept: %s" % accept)
        return 1
    for m in messages:
        s.sendall(frame(1, m.encode(), mask=True))
        opcode, payload = read_frame(f)
        print(payload.decode())
    s.sendall(frame(8, b"", mask=True))
    opcode, _ = read_frame(f)
    print("closed" if opcode == 8 else "no close")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--ws-client":
        sys.exit(ws_client(int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
    NAME = sys.argv[1]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()
