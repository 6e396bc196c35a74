#!/usr/bin/env python3
"""A stand-in for an outbound mail relay (a provider's smarthost, which cannot run here):
SMTP with STARTTLS, AUTH PLAIN and LOGIN only after TLS, accepting every message. It
records what a real relay would see in OUTDIR/events (one line each: starttls, tls-failed,
auth USER:PASSWORD, MAIL/RCPT commands, message) and each message in OUTDIR/message-N.
A login with REFUSED_PASSWORD, when given, is refused with 535 (a login gone stale).
  smtp-relay-standin.py CERT KEY OUTDIR ADDRESS PORT [REFUSED_PASSWORD]
"""
import base64
import os
import socketserver
import ssl
import sys

cert, key, outdir, address, port = sys.argv[1:6]
refused_password = sys.argv[6] if len(sys.argv) > 6 else None
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)


def log(event):
    with open(os.path.join(outdir, "events"), "a") as events:
        events.write(event + "\n")


class Session(socketserver.StreamRequestHandler):
    def handle(self):
        connection = self.connection
        stream = connection.makefile("rwb")
        tls = False

        def send(*lines):
            for line in lines:
                stream.write(line.encode() + b"\r\n")
            stream.flush()

        def read():
            return stream.readline().decode(errors="replace").rstrip("\r\n")

        send("220 relay.test ESMTP stand-in")
        while True:
            command = read()
            if not command:
                return
            verb = command.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                extension = "250-AUTH PLAIN LOGIN" if tls else "250-STARTTLS"
                send("250-relay.test", extension, "250 8BITMIME")
            elif verb == "STARTTLS" and not tls:
                send("220 2.0.0 ready")
                log("starttls")
                try:
                    connection = context.wrap_socket(connection, server_side=True)
                except (ssl.SSLError, OSError) as error:
                    log(f"tls-failed {error}")
                    return
                stream = connection.makefile("rwb")
                tls = True
            elif verb == "AUTH" and tls:
                words = command.split(" ")
                if words[1].upper() == "PLAIN":
                    if len(words) > 2:
                        data = words[2]
                    else:
                        send("334 ")
                        data = read()
                    _, user, password = base64.b64decode(data).decode().split("\0")
                else:
                    send("334 VXNlcm5hbWU6")
                    user = base64.b64decode(read()).decode()
                    send("334 UGFzc3dvcmQ6")
                    password = base64.b64decode(read()).decode()
                log(f"auth {user}:{password}")
                if password == refused_password:
                    send("535 5.7.8 authentication failed")
                else:
                    send("235 2.7.0 accepted")
            elif verb in ("MAIL", "RCPT"):
                log(command)
                send("250 2.1.0 ok")
            elif verb == "DATA":
                send("354 go on")
                lines = []
                while True:
                    line = stream.readline()
                    if line in (b".\r\n", b".\n", b""):
                        break
                    lines.append(line)
                count = len([n for n in os.listdir(outdir) if n.startswith("message-")])
                with open(os.path.join(outdir, f"message-{count}"), "wb") as message:
                    message.write(b"".join(lines))
                log("message")
                send("250 2.0.0 queued")
            elif verb in ("RSET", "NOOP"):
                send("250 2.0.0 ok")
            elif verb == "QUIT":
                send("221 2.0.0 bye")
                return
            else:
                send("502 5.5.2 not here")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server((address, int(port)), Session).serve_forever()
