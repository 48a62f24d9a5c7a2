#!/usr/bin/env python3
"""An asyncio benchmark for scripts/bench-clients (not a test): round trips
of small messages through asyncio streams.

  asyncio_pingpong.py --expect kqueue|epoll [--pair N] [--tcp CONNS N]

--pair N: one echo server and one client over a socketpair, N round trips
of a 64-byte message (each: the client writes, the server's reader wakes,
echoes, the client's reader wakes).
--tcp CONNS N: CONNS clients over loopback TCP to one asyncio server, each
N round trips, all at once.

Before it measures anything it checks the event loop it runs on: with
--expect kqueue the `select` module must be the kqueue build the clients
harness loads through sitecustomize (KQ_SELECT_SO) and the loop's selector a
KqueueSelector; with --expect epoll an EpollSelector. A mismatch, a lost or
wrong reply, or a count short of what was asked ends the run with status 1
and no result line. Prints one JSON line per benchmark:
{"bench": ..., "selector": ..., "round_trips": ..., "seconds": ..., "us_per_round_trip": ...}
"""
import argparse
import asyncio
import json
import os
import select
import selectors
import socket
import sys
import time

MESSAGE = b"x" * 63 + b"\n"


def check_selector(expect):
    loop = asyncio.new_event_loop()
    name = type(loop._selector).__name__
    loop.close()
    problems = []
    if expect == "kqueue":
        origin = getattr(select.__spec__, "origin", None)
        if origin is None or origin != os.environ.get("KQ_SELECT_SO"):
            problems.append(f"select is {origin}, not KQ_SELECT_SO ({os.environ.get('KQ_SELECT_SO')})")
        want = "KqueueSelector"
    else:
        want = "EpollSelector"
    if name != want:
        problems.append(f"the loop's selector is {name}, expected {want}")
    if selectors.DefaultSelector.__name__ != want:
        problems.append(f"DefaultSelector is {selectors.DefaultSelector.__name__}, expected {want}")
    if problems:
        sys.exit("asyncio_pingpong: " + "; ".join(problems))
    return name


async def echo(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()


async def client(reader, writer, n):
    done = 0
    for _ in range(n):
        writer.write(MESSAGE)
        await writer.drain()
        reply = await reader.readline()
        if reply != MESSAGE:
            raise RuntimeError(f"round trip {done}: got {reply[:20]!r}")
        done += 1
    writer.close()
    await writer.wait_closed()
    return done


async def pair(n):
    a, b = socket.socketpair()
    server = asyncio.ensure_future(echo(*await asyncio.open_connection(sock=b)))
    start = time.perf_counter()
    done = await client(*await asyncio.open_connection(sock=a), n)
    seconds = time.perf_counter() - start
    await server
    return done, seconds


async def tcp(conns, n):
    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=conns)
    port = server.sockets[0].getsockname()[1]
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(conns)]
    start = time.perf_counter()
    done = await asyncio.gather(*(client(r, w, n) for r, w in streams))
    seconds = time.perf_counter() - start
    server.close()
    await server.wait_closed()
    return sum(done), seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expect", choices=["kqueue", "epoll"], required=True)
    ap.add_argument("--pair", type=int, metavar="N")
    ap.add_argument("--tcp", type=int, nargs=2, metavar=("CONNS", "N"))
    args = ap.parse_args()
    name = check_selector(args.expect)
    runs = []
    if args.pair:
        runs.append(("pair", args.pair, lambda: pair(args.pair)))
    if args.tcp:
        conns, n = args.tcp
        runs.append((f"tcp {conns}", conns * n, lambda: tcp(conns, n)))
    if not runs:
        ap.error("nothing to run: --pair and/or --tcp")
    for bench, want, coro in runs:
        done, seconds = asyncio.run(coro())
        if done != want or seconds <= 0:
            sys.exit(f"asyncio_pingpong: {bench}: {done} of {want} round trips in {seconds} s")
        print(json.dumps({"bench": bench, "selector": name, "round_trips": done, "seconds": seconds,
                          "us_per_round_trip": seconds / done * 1e6}), flush=True)


if __name__ == "__main__":
    main()
