#!/usr/bin/env python3
"""Asks an NTP server for the time once (an SNTP client request, RFC 4330) and prints the
answer's stratum, its offset from this machine's clock in milliseconds, and its leap
indicator; exits 1 when nothing answers in time or the answer is not a server's.

    ntp-query.py ADDRESS [TIMEOUT_SECONDS]
"""
import socket
import struct
import sys
import time

NTP_EPOCH = 2208988800  # 1900-01-01 to 1970-01-01, in seconds


def to_ntp(t):
    return int(t + NTP_EPOCH), int((t % 1) * 2**32)


def from_ntp(seconds, fraction):
    return seconds - NTP_EPOCH + fraction / 2**32


def main():
    address = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sent = time.time()
    request = bytearray(48)
    request[0] = (0 << 6) | (4 << 3) | 3  # no leap warning, version 4, client
    request[40:48] = struct.pack(">II", *to_ntp(sent))
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(bytes(request), (address, 123))
        try:
            answer, _ = sock.recvfrom(512)
        except socket.timeout:
            print(f"no answer from {address} in {timeout} s", file=sys.stderr)
            sys.exit(1)
    received = time.time()
    if len(answer) < 48 or answer[0] & 7 != 4 or answer[24:32] != bytes(request[40:48]):
        print("not a server's answer to this request", file=sys.stderr)
        sys.exit(1)
    leap, stratum = answer[0] >> 6, answer[1]
    server_received = from_ntp(*struct.unpack(">II", answer[32:40]))
    server_sent = from_ntp(*struct.unpack(">II", answer[40:48]))
    offset = ((server_received - sent) + (server_sent - received)) / 2
    print(f"{stratum} {offset * 1000:.3f} {leap}")


if __name__ == "__main__":
    main()
