#!/usr/bin/python3
# A loopback SMS gateway for nspawn.sh: answers every form POST with 201
# and appends the form, one JSON object a line, to
# /var/lib/sms-gw/messages.jsonl.
import http.server
import json
import os
import urllib.parse

os.makedirs("/var/lib/sms-gw", exist_ok=True)


class Gateway(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        with open("/var/lib/sms-gw/messages.jsonl", "a") as f:
            f.write(json.dumps(form) + "\n")
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


server = http.server.HTTPServer(("127.0.0.1", 8025), Gateway)
open("/run/sms-gw.ready", "w").close()
server.serve_forever()
