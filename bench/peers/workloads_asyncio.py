"""The bench/compare workloads in Python asyncio (or uvloop with --uvloop).

Usage: python3 workloads_asyncio.py [--uvloop] [workload ...]
Prints "<workload> <metric> <value>" lines, like the C++ workload programs.
"""
import asyncio
import os
import statistics
import sys
import time


def report(workload, metric, value):
    print(f"{workload} {metric} {value:.3f}", flush=True)


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def child(i):
    await asyncio.sleep(0)
    return i


ROUNDS = 5  # after a warm-up round; the median is reported, as in the C++ programs


async def gather_100k():
    n = 100_000
    times = []
    for rnd in range(ROUNDS + 1):
        t0 = time.perf_counter()
        r = await asyncio.gather(*[child(i) for i in range(n)])
        s = time.perf_counter() - t0
        assert len(r) == n and r[-1] == n - 1
        if rnd > 0:
            times.append(s)
    report("gather_100k", "ns_per_task", statistics.median(times) * 1e9 / n)
    # The other form: create_task for each, then gather(tasks).
    times = []
    for rnd in range(ROUNDS + 1):
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(child(i)) for i in range(n)]
        r = await asyncio.gather(*tasks)
        s = time.perf_counter() - t0
        assert len(r) == n and r[-1] == n - 1
        if rnd > 0:
            times.append(s)
    report("gather_100k", "ns_per_task_create_task", statistics.median(times) * 1e9 / n)


async def sleep0_1m():
    n = 1_000_000
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    report("sleep0_1m", "ns_per_op", (time.perf_counter() - t0) * 1e9 / n)


async def yielder(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def switch_1m():
    n = 1_000_000
    t0 = time.perf_counter()
    await asyncio.gather(yielder(n // 2), yielder(n // 2))
    report("switch_1m", "ns_per_op", (time.perf_counter() - t0) * 1e9 / n)


async def sleeper():
    await asyncio.sleep(0.050)


async def sleep_100k():
    n = 100_000
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    g = asyncio.gather(*[sleeper() for _ in range(n)])
    await asyncio.sleep(0.025)
    peak = rss_bytes()
    await g
    s = time.perf_counter() - t0
    report("sleep_100k", "ns_overhead_per_timer", (s - 0.050) * 1e9 / n)
    report("sleep_100k", "bytes_per_task", (peak - rss0) / n)


async def long_sleeper():
    await asyncio.sleep(3600)


async def cancel_100k():
    n = 100_000
    tasks = [asyncio.create_task(long_sleeper()) for _ in range(n)]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    report("cancel_100k", "ns_per_task", (time.perf_counter() - t0) * 1e9 / n)


def raise_cancelled(i):
    raise asyncio.CancelledError("never" if i < 0 else "")


async def sleep_at_depth(depth):
    if depth > 1:
        await sleep_at_depth(depth - 1)
    else:
        await asyncio.sleep(3600)


async def cancel_ns(depth):
    n = 20_000
    tasks = [asyncio.create_task(sleep_at_depth(depth)) for _ in range(n)]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    s = time.perf_counter() - t0
    assert all(t.cancelled() for t in tasks)
    return s * 1e9 / n


async def cancel_cost():
    n = 20_000
    thrown, depth1, depth4 = [], [], []
    for _ in range(3):
        caught = 0
        t0 = time.perf_counter()
        for i in range(n):
            try:
                raise_cancelled(i)
            except asyncio.CancelledError:
                caught += 1
        thrown.append((time.perf_counter() - t0) * 1e9 / n)
        assert caught == n
        depth1.append(await cancel_ns(1))
        depth4.append(await cancel_ns(4))
    d1, d4 = statistics.median(depth1), statistics.median(depth4)
    report("cancel_cost", "ns_throw_catch", statistics.median(thrown))
    report("cancel_cost", "ns_cancel", d1)
    report("cancel_cost", "ns_cancel_per_level", (d4 - d1) / 3)


async def mem_task():
    n = 100_000
    ev = asyncio.Event()
    rss0 = rss_bytes()
    tasks = [asyncio.create_task(ev.wait()) for _ in range(n)]
    await asyncio.sleep(0)
    report("mem_task", "bytes_per_task", (rss_bytes() - rss0) / n)
    ev.set()
    await asyncio.gather(*tasks)


async def getter(q):
    return await q.get()


async def mem_getter():
    n = 100_000
    q = asyncio.Queue()
    rss0 = rss_bytes()
    tasks = [asyncio.create_task(getter(q)) for _ in range(n)]
    await asyncio.sleep(0)
    report("mem_getter", "bytes_per_getter", (rss_bytes() - rss0) / n)
    for i in range(n):
        q.put_nowait(i)
    await asyncio.gather(*tasks)


async def mem_future():
    import concurrent.futures
    import threading
    n = 100_000
    go = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fs = [pool.submit(go.wait)]
        rss0 = rss_bytes()
        fs += [pool.submit(trivial, i) for i in range(n)]
        report("mem_future", "bytes_per_future", (rss_bytes() - rss0) / n)
        go.set()
        for f in fs:
            f.result()


async def nothing():
    pass


def run_startup():
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        asyncio.run(nothing())
    report("run_startup", "us_per_run", (time.perf_counter() - t0) * 1e6 / n)


async def ready_value(i):
    return i


async def wait_for_ready():
    n = 200_000
    plain, timed = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(n):
            await ready_value(i)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n):
            await asyncio.wait_for(ready_value(i), 1)
        timed.append(time.perf_counter() - t0)
    report("wait_for_ready", "ns_plain_await", statistics.median(plain) * 1e9 / n)
    report("wait_for_ready", "ns_wait_for", statistics.median(timed) * 1e9 / n)


async def producer(q, n):
    for i in range(n):
        await q.put(i)


async def consumer(q, n):
    s = 0
    for _ in range(n):
        s += await q.get()
    return s


async def queue_1m():
    n = 1_000_000
    q = asyncio.Queue(1000)
    t0 = time.perf_counter()
    _, s = await asyncio.gather(producer(q, n), consumer(q, n))
    assert s == n * (n - 1) // 2
    report("queue_1m", "ns_per_item", (time.perf_counter() - t0) * 1e9 / n)


async def lock_user(lock, n):
    for _ in range(n):
        await lock.acquire()
        await asyncio.sleep(0)
        lock.release()


async def lock_handoff():
    n = 200_000
    lock = asyncio.Lock()
    t0 = time.perf_counter()
    await asyncio.gather(lock_user(lock, n), lock_user(lock, n))
    report("lock_handoff", "ns_per_acquire", (time.perf_counter() - t0) * 1e9 / (2 * n))


async def pinger(mine, theirs, n):
    for _ in range(n):
        await mine.wait()
        mine.clear()
        theirs.set()


async def event_pingpong():
    n = 200_000
    a, b = asyncio.Event(), asyncio.Event()
    a.set()
    t0 = time.perf_counter()
    await asyncio.gather(pinger(a, b, n), pinger(b, a, n))
    report("event_pingpong", "ns_per_round_trip", (time.perf_counter() - t0) * 1e9 / n)


def trivial(i):
    return i


async def to_thread_20k():
    n = 20_000
    times = []
    for rnd in range(3):
        t0 = time.perf_counter()
        r = await asyncio.gather(*[asyncio.to_thread(trivial, i) for i in range(n)])
        assert r[-1] == n - 1
        if rnd > 0:
            times.append(time.perf_counter() - t0)
    report("to_thread_20k", "ns_per_call", statistics.median(times) * 1e9 / n)


async def to_thread_latency():
    n = 5_000
    us = []
    await asyncio.to_thread(trivial, 0)
    for i in range(n):
        t0 = time.perf_counter()
        await asyncio.to_thread(trivial, i)
        us.append((time.perf_counter() - t0) * 1e6)
    us.sort()
    report("to_thread_latency", "us_p50", us[n // 2])
    report("to_thread_latency", "us_p99", us[n * 99 // 100])


async def submit_100k():
    import concurrent.futures
    n = 100_000
    with concurrent.futures.ThreadPoolExecutor() as pool:
        t0 = time.perf_counter()
        fs = [pool.submit(trivial, i) for i in range(n)]
        for f in fs:
            f.result()
        report("submit_100k", "ns_per_submit", (time.perf_counter() - t0) * 1e9 / n)


async def proc_submit_20k():
    import concurrent.futures
    n = 20_000
    with concurrent.futures.ProcessPoolExecutor() as ex:
        list(ex.map(trivial, [1] * (os.cpu_count() * 4)))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fs = [ex.submit(trivial, i) for i in range(n)]
            r = [f.result() for f in fs]
            assert r[-1] == n - 1
            times.append(time.perf_counter() - t0)
    report("proc_submit_20k", "ns_per_task", statistics.median(times) * 1e9 / n)


async def proc_map_1m():
    import concurrent.futures
    import multiprocessing
    n = 1_000_000
    with concurrent.futures.ProcessPoolExecutor() as ex:
        list(ex.map(trivial, [1] * (os.cpu_count() * 4)))
        t0 = time.perf_counter()
        r = list(ex.map(trivial, range(n), chunksize=256))
        assert r[-1] == n - 1
        report("proc_map_1m", "ns_per_item", (time.perf_counter() - t0) * 1e9 / n)
    with multiprocessing.Pool() as pool:
        pool.map(trivial, [1] * (os.cpu_count() * 4))
        t0 = time.perf_counter()
        r = pool.map(trivial, range(n), chunksize=256)
        assert r[-1] == n - 1
        report("proc_map_1m", "ns_per_item_pool", (time.perf_counter() - t0) * 1e9 / n)


async def proc_startup():
    import concurrent.futures
    import multiprocessing
    for method, metric in (("forkserver", "ms_first_result"), ("fork", "ms_first_result_fork")):
        t0 = time.perf_counter()
        with concurrent.futures.ProcessPoolExecutor(
                mp_context=multiprocessing.get_context(method)) as ex:
            assert ex.submit(trivial, 1).result() == 1
            report("proc_startup", metric, (time.perf_counter() - t0) * 1e3)


def spin(n):
    s = 0
    for i in range(n):
        s += (i * i) ^ (s >> 3)
    return s


async def proc_cpu():
    import concurrent.futures
    n = 3_000_000
    cores = len(os.sched_getaffinity(0))
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as one:
        one.submit(spin, 1).result()
        t0 = time.perf_counter()
        for _ in range(cores):
            one.submit(spin, n).result()
        sequential = time.perf_counter() - t0
    with concurrent.futures.ProcessPoolExecutor(max_workers=cores) as ex:
        list(ex.map(spin, [1] * (cores * 2)))
        t0 = time.perf_counter()
        for f in [ex.submit(spin, n) for _ in range(cores)]:
            f.result()
        parallel = time.perf_counter() - t0
    report("proc_cpu", "speedup_per_core", sequential / parallel / cores)

async def echo_exact(r, w):
    try:
        while True:
            w.write(await r.readexactly(64))
    except asyncio.IncompleteReadError:
        pass
    w.close()


async def tcp_pingpong():
    n = 20_000
    server = await asyncio.start_server(echo_exact, "127.0.0.1", 0)
    r, w = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    msg = b"p" * 64
    for _ in range(1000):
        w.write(msg)
        await r.readexactly(64)
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        w.write(msg)
        await r.readexactly(64)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    lat.sort()
    report("tcp_pingpong", "ns_per_round_trip", total * 1e9 / n)
    report("tcp_pingpong", "us_p50", lat[n // 2] * 1e6)
    report("tcp_pingpong", "us_p99", lat[n * 99 // 100] * 1e6)
    w.close()
    server.close()


async def tcp_pingpong_100():
    conns, rounds = 100, 200
    server = await asyncio.start_server(echo_exact, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        msg = b"p" * 64
        for _ in range(rounds):
            w.write(msg)
            await r.readexactly(64)
        w.close()
    cpu0 = time.process_time()
    await asyncio.gather(*(one() for _ in range(conns)))
    report("tcp_pingpong_100", "ns_cpu_per_msg", (time.process_time() - cpu0) * 1e9 / (conns * rounds))
    server.close()


async def sink(r, w):
    got = 0
    while b := await r.read(65536):
        got += len(b)
    w.write(str(got).encode())
    w.close()


async def tcp_bulk():
    total = 256 << 20
    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    r, w = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    block = b"b" * 65536
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        w.write(block)
        await w.drain()
        sent += len(block)
    w.write_eof()
    assert await r.read() == str(total).encode()
    report("tcp_bulk", "ms_per_gib", (time.perf_counter() - t0) * 1e3 * (1 << 30) / total)
    w.close()
    server.close()


async def liner(r, w):
    chunk = b"".join(b"line %d of the test\n" % (i % 10) for i in range(1000))
    for _ in range(1000):
        w.write(chunk)
        await w.drain()
    w.close()


async def readline_1m():
    server = await asyncio.start_server(liner, "127.0.0.1", 0)
    r, w = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    t0 = time.perf_counter()
    n = 0
    while await r.readline():
        n += 1
    assert n == 1_000_000
    report("readline_1m", "ns_per_line", (time.perf_counter() - t0) * 1e9 / n)
    w.close()
    server.close()


async def idle_10k():
    n = 5000
    done = asyncio.Event()

    async def idle(r, w):
        await done.wait()
        w.close()
    server = await asyncio.start_server(idle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    rss0 = rss_bytes()
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    for _ in range(10):
        await asyncio.sleep(0.01)
    report("idle_10k", "bytes_per_connection", (rss_bytes() - rss0) / n)
    done.set()
    for r, w in conns:
        w.close()
    server.close()


async def tls_pingpong():
    import ssl, subprocess, tempfile
    n = 10_000
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{d}/key.pem",
                        "-out", f"{d}/cert.pem", "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"], check=True,
                       capture_output=True)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
        cctx = ssl.create_default_context(cafile=f"{d}/cert.pem")
        server = await asyncio.start_server(echo_exact, "127.0.0.1", 0, ssl=sctx)
        r, w = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1],
                                             ssl=cctx, server_hostname="localhost")
    msg = b"p" * 64
    for _ in range(1000):
        w.write(msg)
        await r.readexactly(64)
    t0 = time.perf_counter()
    for _ in range(n):
        w.write(msg)
        await r.readexactly(64)
    report("tls_pingpong", "ns_per_round_trip", (time.perf_counter() - t0) * 1e9 / n)
    w.close()
    server.close()


async def spawn_1k():
    n = 1000
    for _ in range(20):  # warm-up
        p = await asyncio.create_subprocess_exec("/bin/true")
        await p.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        assert await p.wait() == 0
    report("spawn_1k", "us_per_spawn", (time.perf_counter() - t0) * 1e6 / n)


async def communicate_100m():
    total = 100 << 20
    data = b"c" * total
    p = await asyncio.create_subprocess_exec("cat", stdin=asyncio.subprocess.PIPE,
                                             stdout=asyncio.subprocess.PIPE)
    t0 = time.perf_counter()
    out, _ = await p.communicate(data)
    assert len(out) == total
    report("communicate_100m", "ms_per_gib", (time.perf_counter() - t0) * 1e3 * (1 << 30) / total)


WORKLOADS = {"spawn_1k": spawn_1k, "communicate_100m": communicate_100m,
             "gather_100k": gather_100k, "sleep0_1m": sleep0_1m, "switch_1m": switch_1m,
             "sleep_100k": sleep_100k, "cancel_100k": cancel_100k,
             "wait_for_ready": wait_for_ready, "queue_1m": queue_1m, "lock_handoff": lock_handoff,
             "event_pingpong": event_pingpong, "to_thread_20k": to_thread_20k,
             "to_thread_latency": to_thread_latency, "submit_100k": submit_100k,
             "proc_submit_20k": proc_submit_20k, "proc_map_1m": proc_map_1m,
             "proc_startup": proc_startup, "proc_cpu": proc_cpu,
             "tcp_pingpong": tcp_pingpong, "tcp_pingpong_100": tcp_pingpong_100,
             "tcp_bulk": tcp_bulk, "readline_1m": readline_1m, "idle_10k": idle_10k,
             "tls_pingpong": tls_pingpong, "cancel_cost": cancel_cost, "mem_task": mem_task,
             "mem_getter": mem_getter, "mem_future": mem_future, "run_startup": None}


def main(argv):
    args = [a for a in argv if a != "--uvloop"]
    if "--uvloop" in argv:
        import uvloop
        uvloop.install()
    for name in args or list(WORKLOADS):
        if name not in WORKLOADS:
            print(f"no workload named {name} here", file=sys.stderr)
            sys.exit(3)
        if WORKLOADS[name] is None:
            run_startup()  # runs asyncio.run itself
        else:
            asyncio.run(WORKLOADS[name]())


if __name__ == "__main__":
    main(sys.argv[1:])
