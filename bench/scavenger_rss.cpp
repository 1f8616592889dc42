// RSS over time for a live heap that rises to 512 MiB and falls to 16 MiB,
// with and without the background scavenger (issue: scavenger, bench/).
//
//   scavenger_rss [--scavenger on|off] [--peak-mib N] [--floor-mib N] [--idle-seconds S]
//
// Prints CSV on stdout: seconds,phase,rss_mib,heap_usage_mib,heap_released_mib,heap_alloc_mib
// sampled every 50 ms. The live heap is a gcheap array of pointers to 64 KiB
// noscan blocks (written to, so that they are resident), registered as a root.
#include <gcheap/gcheap.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

constexpr std::size_t kBlock = 64 * 1024;

double resident_mib() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return 0;
    unsigned long size = 0;
    unsigned long resident = 0;
    const int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    return n == 2 ? static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20) : 0;
}

struct Sampler {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    void sample(const char* phase) const {
        const gcheap::MemStats s = gcheap::read_mem_stats();
        const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("%.3f,%s,%.1f,%.1f,%.1f,%.1f\n", t, phase, resident_mib(),
                    static_cast<double>(s.heap_usage()) / (1 << 20), static_cast<double>(s.HeapReleased) / (1 << 20),
                    static_cast<double>(s.HeapAlloc) / (1 << 20));
        std::fflush(stdout);
    }
};

}  // namespace

int main(int argc, char** argv) {
    bool scavenger = true;
    std::size_t peak_mib = 512;
    std::size_t floor_mib = 16;
    double idle_seconds = 90;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--scavenger") scavenger = std::strcmp(argv[i + 1], "off") != 0;
        else if (flag == "--peak-mib") peak_mib = std::strtoul(argv[i + 1], nullptr, 10);
        else if (flag == "--floor-mib") floor_mib = std::strtoul(argv[i + 1], nullptr, 10);
        else if (flag == "--idle-seconds") idle_seconds = std::strtod(argv[i + 1], nullptr);
    }
    gcheap::set_background_scavenger(scavenger);

    const std::size_t peak_blocks = (peak_mib << 20) / kBlock;
    const std::size_t floor_blocks = (floor_mib << 20) / kBlock;
    auto** live = static_cast<void**>(gcheap::alloc_noscan(peak_blocks * sizeof(void*)));
    gcheap::add_roots(live, live + peak_blocks);  // the array is the root; its blocks hang off it

    Sampler sampler;
    std::printf("seconds,phase,rss_mib,heap_usage_mib,heap_released_mib,heap_alloc_mib\n");
    // Rise: allocate and touch 512 MiB of live blocks.
    for (std::size_t i = 0; i < peak_blocks; ++i) {
        live[i] = gcheap::alloc_noscan(kBlock);
        std::memset(live[i], 1, kBlock);
        if (i % 512 == 0) sampler.sample("rise");
    }
    sampler.sample("peak");
    // Fall: drop all but 16 MiB, and let the program go on allocating a
    // little (the collector runs as the pacer decides; nobody calls collect()).
    for (std::size_t i = floor_blocks; i < peak_blocks; ++i) live[i] = nullptr;
    const auto fall = std::chrono::steady_clock::now();
    std::size_t churn = 0;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - fall).count() < idle_seconds) {
        for (int k = 0; k < 16; ++k) {
            void* p = gcheap::alloc_noscan(kBlock);  // short-lived garbage (1 MiB per sample): keeps cycles coming
            std::memset(p, 2, kBlock);
        }
        live[churn++ % floor_blocks] = gcheap::alloc_noscan(kBlock);
        sampler.sample("fall");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // sampling interval, not synchronisation
    }
    gcheap::remove_roots(live, live + peak_blocks);
    return 0;
}
