"""A real HTTP server standing in for an SMS gateway in the delivery tests. Each request is appended
to the file given as the first argument as one JSON line: method, path, headers, body. Paths under
/reject answer 401 with a body that echoes the request's body (as a careless gateway would);
every other path answers 201. Binds 127.0.0.1 port 0 and prints the port once it listens."""
import http.server
import json
import sys

record = sys.argv[1]


class Gateway(http.server.BaseHTTPRequestHandler):
    def handle_request(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        with open(record, "a", encoding="utf-8") as out:
            out.write(json.dumps({"method": self.command, "path": self.path,
                                  "headers": {k.lower(): v for k, v in self.headers.items()},
                                  "body": body}) + "\n")
        if self.path.startswith("/reject"):
            answer = ("rejected: " + body + "\n").encode()
            self.send_response(401)
        else:
            answer = b'{"status": "queued"}\n'
            self.send_response(201)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_POST = do_PUT = do_GET = handle_request

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
print(server.server_address[1], flush=True)
server.serve_forever()
