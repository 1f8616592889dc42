// Fault injection (issue: "Trust"): every OS refusal — address space, commit,
// metadata, madvise, thread creation, and a real RLIMIT_AS — surfaces as the
// documented outcome, loses no live object, and the heap works again once the
// fault clears. Faults come from OsMemory::fail_after_for_testing.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "runtime/sanitizers.hpp"
#include "runtime/scavenger.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/heap_fixture.hpp"

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <system_error>
#include <vector>

using namespace gcheap::detail;
using gcheap::test::check_identities;
using gcheap::test::manual_gc;

namespace {

// Live objects reachable from a registered root array, each carrying its
// index in every word, so that a lost or reused object shows.
class LiveSet {
public:
    LiveSet(Heap& heap, std::size_t count, std::size_t size) : heap_(heap), size_(size), roots_(count) {
        heap_.collector().roots().add(roots_.data(), roots_.data() + roots_.size());
        for (std::size_t i = 0; i < count; ++i) {
            auto* words = static_cast<std::uint64_t*>(heap_.alloc(size, i % 2 == 0));
            for (std::size_t w = 0; w < size / 8; ++w) words[w] = i * 0x9e3779b97f4a7c15ULL + w;
            roots_[i] = words;
        }
    }
    ~LiveSet() { heap_.collector().roots().remove(roots_.data(), roots_.data() + roots_.size()); }

    bool intact() const {
        for (std::size_t i = 0; i < roots_.size(); ++i) {
            for (std::size_t w = 0; w < size_ / 8; ++w) {
                if (roots_[i][w] != i * 0x9e3779b97f4a7c15ULL + w) return false;
            }
        }
        return true;
    }

private:
    Heap& heap_;
    std::size_t size_;
    std::vector<std::uint64_t*> roots_;
};

void check_healthy(Heap& heap, const LiveSet& live) {
    CHECK(live.intact());
    CHECK(heap.verify() == nullptr);
    CHECK(check_identities(heap.read_mem_stats()) == "");
}

gcheap::HeapOptions paced() {
    gcheap::HeapOptions options;
    options.mark_threads = 2;
    options.parallel_mark_min_bytes = 0;
    return options;
}

}  // namespace

TEST_CASE("fault: address space refused for good throws bad_alloc until the fault clears", "[fault]") {
    Heap heap(manual_gc());
    LiveSet live(heap, 2000, 48);
    heap.os_memory().fail_after_for_testing(OsCall::kReserve, 1, true);
    for (int attempt = 0; attempt < 3; ++attempt) {
        CHECK_THROWS_AS(heap.alloc(std::size_t{512} << 20, false), std::bad_alloc);
    }
    heap.collector().collect();
    check_healthy(heap, live);
    CHECK(heap.alloc(1000, false) != nullptr);  // what is already reserved still serves
    heap.os_memory().clear_faults_for_testing();
    CHECK(heap.alloc(std::size_t{512} << 20, true) != nullptr);
    check_healthy(heap, live);
}

TEST_CASE("fault: commit refused for good lets the heap fill, then throws, and recovers", "[fault]") {
    Heap heap(manual_gc());
    LiveSet live(heap, 2000, 64);
    heap.os_memory().fail_after_for_testing(OsCall::kCommit, 1, true);
    std::size_t allocated = 0;
    bool threw = false;
    try {
        for (; allocated < (std::size_t{2} << 30); allocated += 32768) heap.alloc_aligned(32768, 8, true);
    } catch (const std::bad_alloc&) {
        threw = true;
    }
    CHECK(threw);
    INFO("allocated " << allocated << " bytes before the refusal surfaced");
    check_healthy(heap, live);
    heap.os_memory().clear_faults_for_testing();
    for (int i = 0; i < 100; ++i) REQUIRE(heap.alloc(32768, true) != nullptr);
    check_healthy(heap, live);
}

TEST_CASE("fault: metadata mapping refused throws bad_alloc and loses nothing", "[fault]") {
    Heap heap(manual_gc());
    LiveSet live(heap, 1000, 32);
    heap.os_memory().fail_after_for_testing(OsCall::kMapMetadata, 1, true);
    // Each large object needs a span descriptor; the descriptor pool grows by
    // mapped chunks, and arenas need their metadata mapped too.
    bool threw = false;
    try {
        for (int i = 0; i < 200000; ++i) heap.alloc(40000, true);
    } catch (const std::bad_alloc&) {
        threw = true;
    }
    CHECK(threw);
    check_healthy(heap, live);
    heap.os_memory().clear_faults_for_testing();
    for (int i = 0; i < 1000; ++i) REQUIRE(heap.alloc(40000, true) != nullptr);
    check_healthy(heap, live);
}

TEST_CASE("fault: a failing madvise is counted and keeps the pages resident and counted", "[fault]") {
    Heap heap(manual_gc());
    LiveSet live(heap, 1000, 64);
    [&heap] {
        for (int i = 0; i < 64; ++i) heap.alloc(1 << 20, true);  // garbage: 64 MiB of free pages after a cycle
    }();
    gcheap::test::clear_stack();
    heap.collector().collect();
    const gcheap::MemStats before = heap.read_mem_stats();
    REQUIRE(before.HeapIdle - before.HeapReleased >= (std::uint64_t{32} << 20));
    heap.os_memory().fail_after_for_testing(OsCall::kRelease, 1, true);
    CHECK(heap.release_free_pages() == 0);
    const gcheap::MemStats failed = heap.read_mem_stats();
    CHECK(failed.HeapReleased == before.HeapReleased);
    CHECK(heap.os_memory().release_failures() >= 1);
    check_healthy(heap, live);
    heap.os_memory().clear_faults_for_testing();
    CHECK(heap.release_free_pages() >= (std::uint64_t{32} << 20));
    CHECK(heap.read_mem_stats().HeapReleased >= before.HeapReleased + (std::uint64_t{32} << 20));
    check_healthy(heap, live);
}

TEST_CASE("fault: without mark helper threads the collector marks alone", "[fault]") {
    Heap heap(manual_gc(4));
    LiveSet live(heap, 20000, 48);
    heap.os_memory().fail_after_for_testing(OsCall::kStartThread, 1, true);
    CHECK(heap.collector().marker().ensure_helpers() == 1);
    heap.collector().collect();
    check_healthy(heap, live);
    heap.os_memory().clear_faults_for_testing();
    CHECK(heap.collector().marker().ensure_helpers() == 4);
    heap.collector().collect();
    check_healthy(heap, live);
}

TEST_CASE("fault: a mark helper started late waits for the next round", "[fault]") {
    Heap heap(manual_gc(3));
    Marker& marker = heap.collector().marker();
    heap.os_memory().fail_after_for_testing(OsCall::kStartThread, 2, true);  // one helper of two
    CHECK(marker.ensure_helpers() == 2);
    {
        LiveSet many(heap, 100000, 16);  // enough greyed at once to wake the helpers
        heap.collector().collect();
        heap.collector().collect();
        CHECK(many.intact());
    }
    REQUIRE(marker.helper_wakes() >= 2);
    LiveSet few(heap, 40, 16);  // too little to share: this drain wakes nobody
    heap.os_memory().clear_faults_for_testing();
    CHECK(marker.ensure_helpers() == 3);
    const std::uint64_t runs = marker.helper_runs();
    const std::uint64_t wakes = marker.helper_wakes();
    heap.collector().collect();
    // The new helper must not take the rounds run before it started as a
    // signal to mark (it once did, and could end a drain early).
    CHECK(marker.helper_wakes() == wakes);
    CHECK(marker.helper_runs() == runs);
    check_healthy(heap, few);
}

TEST_CASE("fault: without sweeper and scavenger threads automatic collection still reuses memory", "[fault]") {
    Heap heap(paced());
    LiveSet live(heap, 2000, 64);
    heap.os_memory().fail_after_for_testing(OsCall::kStartThread, 1, true);
    [&heap] {
        for (int i = 0; i < 200000; ++i) heap.alloc(512, false);  // 100 MiB of garbage
    }();
    const gcheap::MemStats s = heap.read_mem_stats();
    CHECK(s.NumGC >= 3);
    CHECK(s.HeapInuse < (std::uint64_t{40} << 20));  // reused, not grown by 100 MiB
    CHECK_FALSE(heap.collector().sweeper().thread_started());
    CHECK_FALSE(heap.scavenger().thread_started());
    check_healthy(heap, live);
    heap.os_memory().clear_faults_for_testing();
    [&heap] {
        for (int i = 0; i < 100000; ++i) heap.alloc(512, false);
    }();
    CHECK(heap.collector().sweeper().thread_started());  // started at the next cycle
    CHECK(heap.scavenger().thread_started());
    check_healthy(heap, live);
}

namespace {
std::atomic<int> g_finalized{0};
void count_finalized(void*) { g_finalized.fetch_add(1); }
}  // namespace

namespace {
[[gnu::noinline]] void allocate_finalizable(Heap& heap, int count) {
    for (int i = 0; i < count; ++i) heap.collector().finalizers().set(heap.alloc(64, false), count_finalized);
}
}  // namespace

TEST_CASE("fault: set_finalizer reports a failed finalizer thread and registers nothing", "[fault]") {
    Heap heap(manual_gc());
    heap.os_memory().fail_after_for_testing(OsCall::kStartThread, 1);
    try {
        allocate_finalizable(heap, 1);
        FAIL("set_finalizer did not throw");
    } catch (const std::system_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("cannot start the finalizer thread"));
    }
    CHECK(heap.collector().finalizers().registered() == 0);
    allocate_finalizable(heap, 50);  // the fault has cleared
    CHECK(heap.collector().finalizers().registered() == 50);
    gcheap::test::clear_stack();
    heap.collector().collect();
    heap.collector().finalizers().wait_idle();
    CHECK(g_finalized.load() >= 45);  // a stale stack word may keep a few alive
}

TEST_CASE("fault child: allocate under RLIMIT_AS", "[.child]") {
    GCHEAP_CHILD_ONLY();
    // The limit: what the process maps now plus 512 MiB, so that the heap
    // runs into it after a few arenas.
    std::FILE* statm = std::fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (statm == nullptr || std::fscanf(statm, "%lu", &pages) != 1) return;
    std::fclose(statm);
    const rlimit limit{pages * 4096 + (std::size_t{512} << 20), pages * 4096 + (std::size_t{512} << 20)};
    if (setrlimit(RLIMIT_AS, &limit) != 0) return;
    {
        Heap heap(manual_gc(2));
        LiveSet live(heap, 1000, 64);
        std::vector<void*>* kept = new std::vector<void*>();  // large objects, kept alive through a root
        kept->reserve(4096);
        heap.collector().roots().add(kept->data(), kept->data() + kept->capacity());
        std::size_t bytes = 0;
        bool threw = false;
        try {
            for (int i = 0; i < 4096; ++i) {
                kept->push_back(heap.alloc(std::size_t{1} << 20, true));
                bytes += std::size_t{1} << 20;
            }
        } catch (const std::bad_alloc&) {
            threw = true;
        }
        std::printf("allocated %zu MiB under the limit, bad_alloc %s\n", bytes >> 20, threw ? "yes" : "no");
        if (!threw || !live.intact() || heap.verify() != nullptr) return;
        // Dropping the large objects lets the same allocations succeed again.
        const std::size_t count = kept->size();
        kept->clear();
        std::memset(kept->data(), 0, kept->capacity() * sizeof(void*));
        heap.collector().collect();
        for (std::size_t i = 0; i < count / 2; ++i) kept->push_back(heap.alloc(std::size_t{1} << 20, true));
        if (!live.intact() || heap.verify() != nullptr) return;
        heap.collector().roots().remove(kept->data(), kept->data() + kept->capacity());
        delete kept;
    }
    std::printf("recovered\n");
}

TEST_CASE("fault: a real address-space limit (RLIMIT_AS) surfaces as bad_alloc and the heap recovers", "[fault]") {
    if (kSanitizedAddressSpace) {
        WARN("skipped: sanitizers reserve terabytes of shadow memory, which RLIMIT_AS forbids");
        return;
    }
    const gcheap::test::ChildResult r = gcheap::test::run_child_test("fault child: allocate under RLIMIT_AS");
    INFO(r.output);
    CHECK(r.exited);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains("bad_alloc yes"));
    CHECK_THAT(r.output, Catch::Contains("recovered"));
}
