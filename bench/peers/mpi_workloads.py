"""The same workloads as bench/mpi_workloads.cpp with mpi4py.futures, under
`mpiexec -n 4 python3 -m mpi4py.futures bench/peers/mpi_workloads.py <workload>...`."""
import resource
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def identity(x):
    return x


def sleep_ms(ms):
    time.sleep(ms / 1000)
    return ms


def cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main():
    with MPIPoolExecutor() as pool:
        pool.bootup()
        pool.submit(identity, 0).result()
        for w in sys.argv[1:]:
            if w == "submit_20k":
                t0 = time.perf_counter()
                fs = [pool.submit(identity, k) for k in range(20000)]
                for f in fs:
                    f.result()
                print(f"submit_20k {(time.perf_counter() - t0) / 20000 * 1e6:.3f} us_per_task")
            elif w == "map_1m":
                t0 = time.perf_counter()
                list(pool.map(identity, range(1000000), chunksize=256))
                print(f"map_1m {time.perf_counter() - t0:.4f} seconds")
            elif w == "idle_cpu":
                c0, t0 = cpu_seconds(), time.perf_counter()
                pool.submit(sleep_ms, 2000).result()
                print(f"idle_cpu {(cpu_seconds() - c0) / (time.perf_counter() - t0):.4f} cpu_per_wall")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
