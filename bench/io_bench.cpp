// Tensor file throughput: write and read a 2×8×512×512 float32 tensor (128 MiB) as .npy
// and as JSON, from the page cache, best of several runs. Prints MB/s of tensor data
// (10^6 bytes of float32 values per second) and of the file itself.
//
// usage: attn_io_bench [DIR] [RUNS]      (DIR default /tmp)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

#include "attn/io.hpp"
#include "attn/random.hpp"
#include "timing.hpp"

using attn::bench::best_seconds;

int main(int argc, char** argv) {
    const std::string dir = argc > 1 ? argv[1] : "/tmp";
    const int runs = argc > 2 ? std::stoi(argv[2]) : 3;
    const attn::Tensor tensor = attn::random_tensor({2, 8, 512, 512}, attn::Distribution::Normal, 0);
    const double megabytes = static_cast<double>(tensor.nbytes()) / 1e6;
    std::printf("tensor (2, 8, 512, 512) float32, %.1f MB; best of %d runs\n", megabytes, runs);
    for (const char* ext : {"npy", "json"}) {
        const std::string path = dir + "/attn_io_bench." + ext;
        const double write = best_seconds(runs, [&] { attn::io::write_tensor(path, tensor); });
        attn::Tensor back;
        const double read = best_seconds(runs, [&] { back = attn::io::read_tensor(path); });
        if (back.shape() != tensor.shape()) return 1;
        const double file_megabytes = static_cast<double>(attn::io::read_file(path).size()) / 1e6;
        std::printf("  %-4s write %6.0f MB/s (file %6.0f MB/s)   read %6.0f MB/s (file %6.0f MB/s)   file %.1f MB\n",
                    ext, megabytes / write, file_megabytes / write, megabytes / read, file_megabytes / read,
                    file_megabytes);
        std::remove(path.c_str());
    }
    return 0;
}
