// MemStats: Go's field meanings and identities, on every read, also while
// several threads allocate (Go's TestMemStats, TestReadMemStats, TestPageAccounting).
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace gcheap::detail;
using gcheap::MemStats;

namespace {

}  // namespace

TEST_CASE("mem stats: the struct has exactly Go's fields", "[mem_stats]") {
    // Adding a field must come with a test of it: update this size and the
    // identities above (Go's TestMemStats fails on unknown fields likewise).
    STATIC_REQUIRE(sizeof(MemStats) == 24 * 8 + 2 * 256 * 8 + 4 + 4 + 8 + 8 + 61 * 24);
    MemStats s;
    CHECK(s.EnableGC);
    CHECK_FALSE(s.DebugGC);
    CHECK(std::size(s.BySize) == 61);
    CHECK(std::size(s.PauseNs) == 256);
}

TEST_CASE("mem stats: a fresh heap has no objects and the identities hold", "[mem_stats]") {
    Heap heap(gcheap::test::no_gc());
    const MemStats s = heap.read_mem_stats();
    CHECK(gcheap::test::check_identities(s).empty());
    CHECK(s.HeapAlloc == 0);
    CHECK(s.Mallocs == 0);
    CHECK(s.HeapInuse == 0);
}

TEST_CASE("mem stats: one 16-byte object alone costs a whole 8 KiB page of HeapInuse", "[mem_stats]") {
    Heap heap(gcheap::test::no_gc());
    const MemStats before = heap.read_mem_stats();
    heap.alloc(16, false);
    const MemStats after = heap.read_mem_stats();
    CHECK(after.HeapInuse - before.HeapInuse == 8192);
    CHECK(after.HeapAlloc - before.HeapAlloc == 16);
    CHECK(after.max_fragmentation() - before.max_fragmentation() == 8192 - 16);
    CHECK(after.heap_usage() - before.heap_usage() == 8192);
    CHECK(after.Mallocs - before.Mallocs == 1);
    CHECK(after.BySize[2].Mallocs - before.BySize[2].Mallocs == 1);
    CHECK(gcheap::test::check_identities(after).empty());
}

TEST_CASE("mem stats: counts are slot sizes and page-rounded large sizes", "[mem_stats]") {
    Heap heap(gcheap::test::no_gc());
    heap.alloc(17, false);        // class 3: 24 bytes
    heap.alloc(1025, true);       // class 33: 1152 bytes
    heap.alloc(40000, false);     // large: 5 pages
    heap.alloc(32769, true);      // large: 5 pages
    const MemStats s = heap.read_mem_stats();
    CHECK(s.HeapAlloc == 24 + 1152 + 5 * 8192 + 5 * 8192);
    CHECK(s.TotalAlloc == s.HeapAlloc);
    CHECK(s.Mallocs == 4);
    CHECK(s.HeapObjects == 4);
    CHECK(s.BySize[3].Mallocs == 1);
    CHECK(s.BySize[33].Mallocs == 1);
    CHECK(s.HeapInuse == 8192 + 8192 + 10 * 8192);
    CHECK(gcheap::test::check_identities(s).empty());
}

TEST_CASE("mem stats: fast counters equal a slow recount of every span", "[mem_stats]") {
    Heap heap(gcheap::test::no_gc());
    std::mt19937 rng(12345);
    for (int i = 0; i < 200000; ++i) {
        const std::size_t size = std::uniform_int_distribution<std::size_t>(0, 100)(rng) < 98
                                     ? std::uniform_int_distribution<std::size_t>(1, 2048)(rng)
                                     : std::uniform_int_distribution<std::size_t>(1, 200000)(rng);
        heap.alloc(size, (i & 1) != 0);
    }
    const MemStats s = heap.read_mem_stats();
    const SlowCounts slow = heap.count_slow();
    CHECK(gcheap::test::check_identities(s).empty());
    CHECK(s.HeapAlloc == slow.alloc_bytes);
    CHECK(s.HeapObjects == slow.objects);
    CHECK(s.HeapInuse == slow.inuse_bytes);
    for (std::size_t c = 1; c < kBySizeClasses; ++c) {
        CAPTURE(c);
        CHECK(s.BySize[c].Mallocs - s.BySize[c].Frees == slow.live_by_class[c]);
    }
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("mem stats: metadata is counted where it lives", "[mem_stats]") {
    Heap heap(gcheap::test::no_gc());
    for (int i = 0; i < 10000; ++i) heap.alloc(8192, false);  // 10000 spans of class 51
    const MemStats s = heap.read_mem_stats();
    CHECK(s.MSpanInuse >= 10000 * sizeof(Span));
    CHECK(s.MSpanSys >= s.MSpanInuse);
    CHECK(s.MCacheInuse >= sizeof(ThreadCache));
    CHECK(s.GCSys >= sizeof(ArenaMeta));  // at least one arena's page map
    CHECK(gcheap::test::check_identities(s).empty());
}

TEST_CASE("mem stats: identities hold on every read while four threads allocate", "[mem_stats][threads]") {
    Heap heap(gcheap::test::no_gc());
    constexpr int kThreads = 4;
    constexpr int kPerThread = 150000;
    std::atomic<int> running{kThreads};
    std::atomic<std::uint64_t> expected_bytes{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t) + 1);
            std::uint64_t bytes = 0;
            for (int i = 0; i < kPerThread; ++i) {
                const unsigned pick = std::uniform_int_distribution<unsigned>(0, 999)(rng);
                std::size_t size;
                bool noscan = (i % 2) != 0;
                if (pick < 5) size = std::uniform_int_distribution<std::size_t>(32769, 300000)(rng);
                else if (pick < 200) size = std::uniform_int_distribution<std::size_t>(1025, 32768)(rng);
                else size = std::uniform_int_distribution<std::size_t>(16, 1024)(rng);
                auto* p = static_cast<unsigned char*>(heap.alloc(size, noscan));
                p[0] = 1;
                p[size - 1] = 2;
                bytes += size <= kMaxSmallSize ? kClassSize[size_to_class(size)]
                                               : (size + kPageSize - 1) / kPageSize * kPageSize;
            }
            expected_bytes += bytes;
            running--;
        });
    }
    int reads = 0;
    std::string failure;
    while (running.load() > 0 || reads == 0) {
        const MemStats s = heap.read_mem_stats();
        failure = gcheap::test::check_identities(s);
        if (!failure.empty()) break;
        ++reads;
    }
    for (auto& t : threads) t.join();
    INFO("reads while allocating: " << reads);
    REQUIRE(failure.empty());
    const MemStats s = heap.read_mem_stats();
    CHECK(gcheap::test::check_identities(s).empty());
    CHECK(s.Mallocs == std::uint64_t{kThreads} * kPerThread);
    CHECK(s.HeapAlloc == expected_bytes.load());
    CHECK(s.TotalAlloc == expected_bytes.load());
    const SlowCounts slow = heap.count_slow();
    CHECK(s.HeapAlloc == slow.alloc_bytes);
    CHECK(s.HeapInuse == slow.inuse_bytes);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("mem stats: releasing free pages moves them from idle-resident to released", "[mem_stats]") {
    Heap heap(gcheap::test::no_gc());
    heap.alloc(100, false);
    const MemStats before = heap.read_mem_stats();
    heap.release_free_pages();  // nothing resident is free yet: growth counts as released
    const MemStats after = heap.read_mem_stats();
    CHECK(after.HeapReleased == before.HeapReleased);
    CHECK(after.HeapIdle == after.HeapReleased);
    CHECK(after.heap_usage() == after.HeapInuse);
    CHECK(gcheap::test::check_identities(after).empty());
}

TEST_CASE("mem stats: the public read_mem_stats reads the default heap", "[mem_stats][api]") {
    const MemStats before = gcheap::read_mem_stats();
    for (int i = 0; i < 1000; ++i) gcheap::alloc(48);
    const MemStats after = gcheap::read_mem_stats();
    CHECK(after.Mallocs - before.Mallocs == 1000);
    CHECK(after.HeapAlloc - before.HeapAlloc == 48000);
    CHECK(gcheap::test::check_identities(after).empty());
}
