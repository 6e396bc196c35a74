#!/usr/bin/env python3
"""Asks two DNS servers the same queries with kdig and compares what a client sees: the
response code, the header flags, and the answer and authority sections (records sorted,
names compared without regard to case, as DNS does). A query line ending in `flags-only`
compares the code and flags alone: what a truncated UDP response carries besides TC is the
server's choice (RFC 2181 section 9). Prints one TAP-style line per query and exits 1 if
any differ.

    dns-diff.py SERVER_A SERVER_B QUERIES_FILE   (servers as ADDRESS[@PORT])
"""
import json
import subprocess
import sys

FLAGS = ("QR", "AA", "TC", "RD", "RA", "AD", "CD")


def ask(server, name, kind, options):
    address, _, port = server.partition("@")
    command = ["kdig", "+json", "+time=2", "+retry=0", "@" + address]
    if port:
        command += ["-p", port]
    command += options + [name, kind]
    done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    # With a truncated answer retried over TCP kdig prints both responses: the last counts.
    documents = []
    decoder = json.JSONDecoder()
    text = done.stdout.strip()
    while text:
        document, end = decoder.raw_decode(text)
        documents.append(document)
        text = text[end:].strip()
    if not documents:
        return {"error": (done.stderr or done.stdout).strip() or "no answer"}
    return normalise(documents[-1])


def record(rr):
    data = sorted(
        (key, str(value).lower())
        for key, value in rr.items()
        if key.startswith("rdata") and key != "RDATAHEX"
    ) or [("hex", rr.get("RDATAHEX", ""))]
    return (rr["NAME"].lower(), rr["TYPEname"], rr["TTL"], tuple(data))


def normalise(message):
    return {
        "rcode": message.get("RCODE"),
        "flags": [flag for flag in FLAGS if message.get(flag)],
        "answer": sorted(record(rr) for rr in message.get("answerRRs", [])),
        "authority": sorted(record(rr) for rr in message.get("authorityRRs", [])),
    }


def main():
    first, second, path = sys.argv[1:4]
    failures = 0
    count = 0
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, kind, *options = line.split()
        flags_only = options[-1:] == ["flags-only"]
        if flags_only:
            options = options[:-1]
        count += 1
        a = ask(first, name, kind, options)
        b = ask(second, name, kind, options)
        if flags_only:
            for seen in (a, b):
                seen.pop("answer", None)
                seen.pop("authority", None)
        if a == b and "error" not in a:
            print(f"ok - same answer: {line}")
            continue
        failures += 1
        print(f"not ok - different answers: {line}")
        for label, seen in ((first, a), (second, b)):
            print(f"#   {label}: {json.dumps(seen, sort_keys=True)}")
    print(f"# {count} queries, {count - failures} the same, {failures} different")
    sys.exit(1 if failures or count == 0 else 0)


if __name__ == "__main__":
    main()
