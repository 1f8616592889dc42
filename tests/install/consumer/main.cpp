// Consumer of an installed gcheap: uses only the public headers.
#include <gcheap/gcheap.hpp>

#include <cstdio>

int main() {
    void* block = gcheap::alloc(100);
    int* seven = gcheap::make<int>(7);
    const gcheap::MemStats stats = gcheap::read_mem_stats();

    std::printf("block=%p seven=%d HeapAlloc=%llu Mallocs=%llu\n", block, *seven,
                static_cast<unsigned long long>(stats.HeapAlloc),
                static_cast<unsigned long long>(stats.Mallocs));
    const gcheap::FragmentationReport report = gcheap::fragmentation_report();
    const bool reconciled = report.stats.HeapInuse - report.stats.HeapAlloc == report.wasted_bytes;
    if (block == nullptr || *seven != 7 || stats.HeapAlloc == 0 || stats.Mallocs < 2 || !reconciled) {
        std::fprintf(stderr, "consumer: unexpected result\n");
        return 1;
    }
    return 0;
}
