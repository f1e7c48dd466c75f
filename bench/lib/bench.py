#!/usr/bin/env python3
"""Helpers for bench/run: signed fixed requests for wrk/h2load, percentiles of h2load logs, the
stream-timing probe and the idle-connection memory probe. Standard library + botocore only."""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import struct
import sys
import time
from urllib.parse import urlsplit

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
MODEL_PATH = "anthropic.claude-3-5-sonnet-20240620-v1%3A0"  # as AWS SDKs send it
BODY = '{"messages":[{"role":"user","content":[{"text":"Say hi in one word."}]}],' \
       '"inferenceConfig":{"maxTokens":16}}'


def cmd_request(a):
    """Writes the request file bench/wrk/request.lua replays (and FILE.body / FILE.h2 for h2load)."""
    u = urlsplit(a.url)
    path = f"/model/{MODEL_PATH}/{a.operation}"
    body = a.body if a.body is not None else BODY
    headers = {"Content-Type": "application/json", "Host": u.netloc}
    if a.auth == "sigv4":
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        req = AWSRequest(method="POST", url=f"{u.scheme}://{u.netloc}{path}", data=body.encode(),
                         headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials(a.akid, a.secret), "bedrock", "us-east-1").add_auth(req)
        headers = {k: v for k, v in req.headers.items()}
        headers["Host"] = u.netloc
    elif a.auth == "bearer":
        headers["Authorization"] = f"Bearer {a.token}"
    elif a.auth == "portkey":
        path = "/v1/chat/completions"
        body = json.dumps({"model": MODEL, "max_tokens": 16,
                           "messages": [{"role": "user", "content": "Say hi in one word."}]})
        headers.update({"x-portkey-provider": "bedrock", "x-portkey-aws-region": "us-east-1",
                        "x-portkey-aws-access-key-id": a.akid,
                        "x-portkey-aws-secret-access-key": a.secret,
                        "x-portkey-custom-host": a.custom_host})
    with open(a.out, "w") as f:
        f.write("POST\n" + path + "\n")
        for k, v in headers.items():
            f.write(f"{k}: {v}\n")
        f.write("\n" + body)
    with open(a.out + ".body", "w") as f:
        f.write(body)
    with open(a.out + ".h2", "w") as f:  # h2load takes :authority from the URL
        for k, v in headers.items():
            if k.lower() != "host":
                f.write(f"{k.lower()}: {v}\n")
    with open(a.out + ".path", "w") as f:
        f.write(path)


def cmd_probe(a):
    """Sends a request file once; prints the status code and the start of the body."""
    import http.client
    import ssl
    with open(a.req) as f:
        text = f.read()
    head, body = text.split("\n\n", 1)
    lines = head.split("\n")
    headers = dict(l.split(": ", 1) for l in lines[2:])
    u = urlsplit(a.url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=10,
                                           context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(lines[0], lines[1], body=body.encode(), headers=headers)
        r = conn.getresponse()
        print(r.status, r.read()[:160].decode(errors="replace").replace("\n", " "))
    except Exception as e:  # noqa: BLE001 - report any failure as a probe result
        print("000", type(e).__name__, e)


def cmd_percentiles(a):
    """p50/p99 (us) of h2load --log-file lines: start(us) status elapsed(us)."""
    lat = []
    with open(a.log) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                lat.append(int(parts[2]))
    lat.sort()
    if not lat:
        print("0 0")
        return
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(pick(0.50), pick(0.99))


def free_port(_a=None):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


async def one_stream(host, port, headers, body, t0_list):
    """One ConverseStream over a raw socket; returns (ttfb_s, [event completion offsets])."""
    reader, writer = await asyncio.open_connection(host, port)
    req = (f"POST /model/{MODEL_PATH}/converse-stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{headers}"
           f"Connection: close\r\n\r\n").encode() + body.encode()
    t0 = time.perf_counter()
    writer.write(req)
    await writer.drain()
    buf = b""
    ttfb = None
    while b"\r\n\r\n" not in buf:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError("closed before head")
        if ttfb is None:
            ttfb = time.perf_counter() - t0
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
    # Undo chunked framing, then cut event-stream frames (4-byte big-endian total length).
    raw, es, offsets = rest, b"", []
    done = False
    while not done:
        while True:
            if b"\r\n" not in raw:
                break
            size_line, after = raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                done = True
                break
            if len(after) < size + 2:
                break
            es += after[:size]
            raw = after[size + 2:]
        now = time.perf_counter() - t0
        while len(es) >= 4:
            total = struct.unpack(">I", es[:4])[0]
            if len(es) < total:
                break
            es = es[total:]
            offsets.append(now)
        if done:
            break
        chunk = await reader.read(65536)
        if not chunk:
            break
        raw += chunk
    writer.close()
    return ttfb, offsets


async def run_streams(url, headers, body, n, concurrency):
    u = urlsplit(url)
    sem = asyncio.Semaphore(concurrency)

    async def guarded():
        async with sem:
            return await one_stream(u.hostname, u.port, headers, body, None)
    return await asyncio.gather(*(guarded() for _ in range(n)))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def cmd_streams(a):
    """TTFB and per-event delay, direct vs through the proxy, over paced simulator streams.
    The simulator sends one event every `pace` ms by timer. An event the proxy holds back for d
    ms makes the gap before it d ms longer and the gap after it d ms shorter, so the spread of
    the inter-arrival gaps around the pace (|gap - pace|) through the proxy, compared with the
    same spread direct, is the per-event delay the proxy adds. Direct and proxied streams run at
    the same time, so the machine's load (2 shared cores) weighs on both alike."""
    body = json.dumps({"messages": [{"role": "user", "content": [
        {"text": f"SIM{{output={a.events},events={a.events},pace_ms={a.pace}}}"}]}]})
    hdr = f"Authorization: Bearer {a.token}\r\n"

    async def both():
        return await asyncio.gather(run_streams(a.direct, hdr, body, a.n, a.concurrency),
                                    run_streams(a.proxy, hdr, body, a.n, a.concurrency))
    direct, proxied = asyncio.run(both())
    res = {"proxy": proxied}

    def jitter(runs):
        # gaps between paced content events: skip the first two frames (messageStart and the
        # first delta leave together after the head) and the unpaced trailing frames
        out = []
        for _, o in runs:
            paced = o[1:1 + a.events]
            out += [abs((paced[i] - paced[i - 1]) * 1e3 - a.pace) for i in range(1, len(paced))]
        return out

    j_direct, j_proxy = jitter(direct), jitter(res["proxy"])
    ttfb_d = [t * 1e3 for t, _ in direct]
    ttfb_p = [t * 1e3 for t, _ in res["proxy"]]
    out = {
        "streams": a.n, "events_per_stream": min(len(o) for _, o in direct), "pace_ms": a.pace,
        "ttfb_direct_p50_ms": pct(ttfb_d, .5), "ttfb_proxy_p50_ms": pct(ttfb_p, .5),
        "ttfb_direct_p99_ms": pct(ttfb_d, .99), "ttfb_proxy_p99_ms": pct(ttfb_p, .99),
        "gap_jitter_direct_p50_ms": pct(j_direct, .5), "gap_jitter_direct_p99_ms": pct(j_direct, .99),
        "gap_jitter_proxy_p50_ms": pct(j_proxy, .5), "gap_jitter_proxy_p99_ms": pct(j_proxy, .99),
    }
    print(json.dumps(out))


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def cmd_idle(a):
    """Opens N keep-alive connections, one request each, then holds them idle; prints the
    proxy's RSS growth per connection."""
    u = urlsplit(a.url)
    req = (f"POST /model/{MODEL_PATH}/converse HTTP/1.1\r\nHost: {u.netloc}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n"
           f"Authorization: Bearer {a.token}\r\n\r\n{BODY}").encode()
    before = vm(a.pid, "VmRSS")
    socks = []
    for _ in range(a.n):
        s = socket.create_connection((u.hostname, u.port))
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, rest = data.split(b"\r\n\r\n", 1)
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
                     .split(b":")[1])
        while len(rest) < length:
            rest += s.recv(65536)
        socks.append(s)
    time.sleep(0.5)
    after = vm(a.pid, "VmRSS")
    print(json.dumps({"connections": a.n, "rss_before": before, "rss_after": after,
                      "bytes_per_connection": (after - before) / a.n}))
    for s in socks:
        s.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("request")
    r.add_argument("--out", required=True)
    r.add_argument("--url", required=True)
    r.add_argument("--auth", choices=["none", "sigv4", "bearer", "portkey"], default="none")
    r.add_argument("--operation", default="converse")
    r.add_argument("--body")
    r.add_argument("--akid", default="")
    r.add_argument("--secret", default="")
    r.add_argument("--token", default="")
    r.add_argument("--custom-host", default="")
    r.set_defaults(fn=cmd_request)
    pr = sub.add_parser("probe")
    pr.add_argument("req")
    pr.add_argument("url")
    pr.set_defaults(fn=cmd_probe)
    q = sub.add_parser("percentiles")
    q.add_argument("log")
    q.set_defaults(fn=cmd_percentiles)
    fp = sub.add_parser("free-port")
    fp.set_defaults(fn=free_port)
    s = sub.add_parser("streams")
    s.add_argument("--direct", required=True)
    s.add_argument("--proxy", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--n", type=int, default=40)
    s.add_argument("--concurrency", type=int, default=20)
    s.add_argument("--events", type=int, default=16)
    s.add_argument("--pace", type=int, default=20)
    s.set_defaults(fn=cmd_streams)
    i = sub.add_parser("idle")
    i.add_argument("--url", required=True)
    i.add_argument("--pid", type=int, required=True)
    i.add_argument("--token", required=True)
    i.add_argument("--n", type=int, default=1000)
    i.set_defaults(fn=cmd_idle)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
