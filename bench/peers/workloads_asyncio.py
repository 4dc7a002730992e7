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

WORKLOADS = {"gather_100k": gather_100k, "sleep0_1m": sleep0_1m, "switch_1m": switch_1m,
             "sleep_100k": sleep_100k, "cancel_100k": cancel_100k,
             "wait_for_ready": wait_for_ready, "queue_1m": queue_1m, "lock_handoff": lock_handoff,
             "event_pingpong": event_pingpong, "to_thread_20k": to_thread_20k,
             "to_thread_latency": to_thread_latency, "submit_100k": submit_100k,
             "proc_submit_20k": proc_submit_20k, "proc_map_1m": proc_map_1m,
             "proc_startup": proc_startup, "proc_cpu": proc_cpu}


def main(argv):
    args = [a for a in argv if a != "--uvloop"]
    if "--uvloop" in argv:
        import uvloop
        uvloop.install()
    for name in args or list(WORKLOADS):
        if name not in WORKLOADS:
            print(f"no workload named {name} here", file=sys.stderr)
            sys.exit(3)
        asyncio.run(WORKLOADS[name]())


if __name__ == "__main__":
    main(sys.argv[1:])
