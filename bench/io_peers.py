#!/usr/bin/python3
"""The peers of bench/io_bench.cpp, same tensor and same rules: numpy's np.save/np.load
and Python's json with numpy, for a 2×8×512×512 float32 tensor from the page cache.
Prints MB/s of tensor data (10^6 bytes of float32 values per second).

usage: bench/io_peers.py [DIR] [RUNS]
"""
import json
import os
import sys

import numpy as np

from timing import best


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    a = np.random.default_rng(0).standard_normal((2, 8, 512, 512)).astype(np.float32)
    mb = a.nbytes / 1e6
    npy, js = os.path.join(d, "io_peers.npy"), os.path.join(d, "io_peers.json")
    w = best(runs, lambda: np.save(npy, a))
    r = best(runs, lambda: np.load(npy))
    print(f"numpy {np.__version__}: np.save {mb / w:6.0f} MB/s   np.load {mb / r:6.0f} MB/s")

    def dump():
        with open(js, "w") as f:
            json.dump({"shape": list(a.shape), "dtype": "float32", "data": a.tolist()}, f)

    def load():
        with open(js) as f:
            j = json.load(f)
        return np.array(j["data"], dtype=j["dtype"])

    w = best(runs, dump)
    r = best(runs, load)
    print(f"python json + numpy: write {mb / w:6.0f} MB/s   read {mb / r:6.0f} MB/s")
    os.remove(npy)
    os.remove(js)


if __name__ == "__main__":
    main()
