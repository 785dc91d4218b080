"""The one timing rule of the Python benchmarks: best wall time of a few runs."""
import time


def best(runs, f):
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return min(t)
