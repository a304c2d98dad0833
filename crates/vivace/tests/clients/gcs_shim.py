"""A small reverse proxy in front of fake-gcs-server so object_store's GCS client can write to it.

Upstream fake-gcs-server accepts an XML-API PUT only when it looks like a signed URL, and answers
without an ETag header. This proxy adds the signed-URL marker (X-Goog-Algorithm) to PUTs and
copies the object's etag from fake-gcs-server's JSON reply into an ETag header. Everything else
passes through unchanged. Usage: gcs_shim.py LISTEN_PORT UPSTREAM_PORT
"""
import http.client
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM = int(sys.argv[1]), int(sys.argv[2])


class Shim(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        path = self.path
        if self.command == "PUT":
            path += ("&" if "?" in path else "?") + "X-Goog-Algorithm=GOOG4-RSA-SHA256"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        conn.request(self.command, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        have_etag = False
        for k, v in resp.getheaders():
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            have_etag |= k.lower() == "etag"
            self.send_header(k, v)
        if self.command == "PUT" and not have_etag:
            try:
                etag = json.loads(data).get("etag") or json.loads(data).get("md5Hash")
            except ValueError:
                etag = None
            self.send_header("ETag", '"%s"' % (etag or "0"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


ThreadingHTTPServer(("127.0.0.1", LISTEN), Shim).serve_forever()
