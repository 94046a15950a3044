"""MTA-STS for the tests (RFC 8461): a policy's text, and the HTTPS server that
publishes policies at https://mta-sts.<domain>/.well-known/mta-sts.txt."""

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WELL_KNOWN = "/.well-known/mta-sts.txt"


def policy(mode="enforce", mx=(), max_age=86400):
    """A policy's text, CRLF lines as RFC 8461 section 3.2 writes them."""
    lines = ["version: STSv1", f"mode: {mode}", *[f"mx: {m}" for m in mx], f"max_age: {max_age}"]
    return ("\r\n".join(lines) + "\r\n").encode()


class PolicyServer:
    """HTTPS on |addr|:443 with the key pair |cert|, |key|.  A GET of WELL_KNOWN
    answers bodies[Host] as text/plain (bodies[None]: for any host), anything else
    404.  .requests holds (host, path) of every request; stop() ends it.  A refused
    handshake is not logged: some tests are about them."""

    def __init__(self, addr, cert, key, bodies=None):
        self.bodies, self.requests = dict(bodies or {}), []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                host = self.headers.get("Host", "")
                outer.requests.append((host, self.path))
                body = outer.bodies.get(host, outer.bodies.get(None))
                if body is None or self.path != WELL_KNOWN:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer((addr, 443), H)
        self.httpd.handle_error = lambda *a: None
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def paths(self):
        return [path for _, path in self.requests]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
