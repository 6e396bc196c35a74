#!/usr/bin/env python3
"""Sends malformed DNS packets over UDP and prints how many got an answer that is not
FORMERR, REFUSED or NOTIMP (no answer at all is fine: dropped).

    dns-malformed.py ADDRESS NAME     (NAME: a name the server holds, e.g. nas.diff.cell)
"""
import socket
import struct
import sys


def header(ident, flags, qdcount):
    return struct.pack(">HHHHHH", ident, flags, qdcount, 0, 0, 0)


def main():
    address, name = sys.argv[1], sys.argv[2]
    question = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\x00\x00\x01\x00\x01"
    packets = [
        b"",                                                   # nothing
        b"\x00\x01\x01",                                       # a short header
        header(2, 0x0100, 2) + question + question,            # two questions
        header(3, 0x0100, 0),                                  # no question
        header(4, 0x0100, 1) + b"\x3fnas",                     # a label past the end
        header(5, 0x0100, 1) + b"\xc0\x0c\x00\x01\x00\x01",    # a compression loop
        header(6, 0x0100, 1) + question[:-3],                  # a truncated type
        header(7, 0x2800, 1) + question,                       # an UPDATE
        bytes(range(256)) * 2,                                 # noise
    ]
    wrong = 0
    for packet in packets:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            sock.sendto(packet, (address, 53))
            try:
                answer = sock.recv(4096)
            except socket.timeout:
                continue
            if len(answer) < 4 or answer[3] & 0x0F not in (1, 4, 5):
                wrong += 1
    print(wrong)


if __name__ == "__main__":
    main()
