#!/usr/bin/env python3
"""Drives a serial console exposed by qemu as a Unix socket, expect-style.

    serial-expect.py SOCKET [--timeout S] STEP...

Each STEP is `expect:REGEX` (wait until the console's output since the last match
matches), `send:TEXT` (type TEXT; `\\r` is Enter) or `send-group:TEXT` (type what the
last expectation's first group matched, then TEXT). Exits 1, printing what the console
showed, when an expectation is not met in time.
"""
import re
import socket
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    path = args.pop(0)
    timeout = 120.0
    if args[:1] == ["--timeout"]:
        args.pop(0)
        timeout = float(args.pop(0))
    console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    console.connect(path)
    console.settimeout(0.5)
    seen = ""
    group = ""
    for step in args:
        kind, _, value = step.partition(":")
        if kind in ("send", "send-group"):
            time.sleep(0.3)  # let the program reach its prompt and the tty settle
            text = (group if kind == "send-group" else "") + value.replace("\\r", "\r")
            console.sendall(text.encode())
            continue
        if kind != "expect":
            print(f"serial-expect: unknown step {step!r}", file=sys.stderr)
            return 2
        pattern = re.compile(value)
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(seen)
            if match:
                group = match.group(1) if match.groups() else ""
                seen = seen[match.end():]
                break
            if time.monotonic() > deadline:
                tail = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen)[-1500:]
                print(f"serial-expect: no {value!r} within {timeout:.0f} s; the console showed:\n{tail}", file=sys.stderr)
                return 1
            try:
                chunk = console.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                print("serial-expect: the console closed", file=sys.stderr)
                return 1
            seen += chunk.decode("utf-8", "replace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
