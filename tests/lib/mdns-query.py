#!/usr/bin/env python3
"""Asks for NAME.local by multicast DNS on the interface that has address LOCAL_IP, the way
a phone or laptop on the LAN does (from port 5353, QU bit set), and prints the IPv4
addresses that come back. Exits 1 if nobody answers within TIMEOUT seconds.
    mdns-query.py LOCAL_IP NAME.local [TIMEOUT]"""
import socket
import struct
import sys
import time

GROUP, PORT = "224.0.0.251", 5353


def query(name: str) -> bytes:
    header = struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    # Type A, class IN with the "unicast response" (QU) bit.
    return header + labels + b"\0" + struct.pack("!HH", 1, 0x8001)


def read_name(packet: bytes, offset: int) -> tuple:
    """The (lower-case) name at offset, following compression pointers, and the offset
    just after it."""
    labels, end, hops = [], None, 0
    while True:
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | packet[offset + 1]
            hops += 1
            if hops > 32:
                raise ValueError("compression loop")
            continue
        if length == 0:
            return ".".join(labels).lower(), (end if end is not None else offset + 1)
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def addresses(packet: bytes, name: str) -> list:
    """IPv4 addresses the packet gives for exactly `name`."""
    _, flags, questions, answers, authority, additional = struct.unpack("!HHHHHH", packet[:12])
    if not flags & 0x8000:
        return []
    offset = 12
    for _ in range(questions):
        offset = read_name(packet, offset)[1] + 4
    found = []
    for _ in range(answers + authority + additional):
        owner, offset = read_name(packet, offset)
        rtype, _, _, length = struct.unpack("!HHIH", packet[offset:offset + 10])
        offset += 10
        if rtype == 1 and length == 4 and owner == name.rstrip(".").lower():
            found.append(socket.inet_ntoa(packet[offset:offset + 4]))
        offset += length
    return found


def main() -> int:
    local_ip, name = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", PORT))
    membership = socket.inet_aton(GROUP) + socket.inet_aton(local_ip)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local_ip))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    deadline = time.monotonic() + timeout
    next_ask = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_ask:
            sock.sendto(query(name), (GROUP, PORT))
            next_ask = time.monotonic() + 1.0
        sock.settimeout(max(0.05, min(next_ask, deadline) - time.monotonic()))
        try:
            packet, _ = sock.recvfrom(9000)
        except socket.timeout:
            continue
        found = addresses(packet, name)
        if found:
            print("\n".join(found))
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
