// Requests the OS will not commit (issue 16, item 4): alloc(1 TiB), alloc(4 TiB)
// and alloc(2^46) on a machine with far less memory throw std::bad_alloc at
// once, cost no memory on the way (VmRSS, not a clock: the cost of the old
// failure was resident metadata, 68 KiB per 64 MiB arena of the request), do
// not show up in MemStats.Sys, and leave the heap usable. Also: arena metadata
// becomes resident only as it is written, and ordinary large allocations
// still work.
//
// The refusal comes from the kernel's overcommit policy at commit
// (os_memory.hpp). With vm.overcommit_memory=1 the kernel commits anything, as
// it does for malloc, so the refusal cases are skipped there with a warning.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "runtime/page_heap.hpp"
#include "runtime/sanitizers.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/heap_fixture.hpp"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <string>
#include <vector>

using namespace gcheap::detail;
using gcheap::MemStats;
using gcheap::test::check_identities;

namespace {

constexpr std::size_t kTiB = std::size_t{1} << 40;
constexpr std::size_t kMiB = std::size_t{1} << 20;
// What a refused request may cost in resident memory and in Sys: the
// collection the allocation ladder runs before giving up (mark stacks, helper
// threads) and noise, far below the old cost (1.1 GB for 1 TiB).
constexpr long kSlackKiB = 8 * 1024;
constexpr std::uint64_t kSysSlack = 16 * kMiB;

// A "VmRSS:" or "VmSize:" line of /proc/self/status, in KiB.
long status_kib(const char* field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    const std::size_t n = std::strlen(field);
    while (std::getline(status, line)) {
        if (line.compare(0, n, field) == 0) return std::atol(line.c_str() + n);
    }
    return -1;
}
long rss_kib() { return status_kib("VmRSS:"); }

// Whether the kernel refuses a commit it cannot back (modes 0 and 2).
bool kernel_refuses_overcommit() {
    std::ifstream mode("/proc/sys/vm/overcommit_memory");
    int value = 0;
    return !(mode >> value) || value != 1;
}

// Objects kept through a registered root array, each word holding a pattern
// that a lost or reused object would break.
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
    LiveSet(const LiveSet&) = delete;
    LiveSet& operator=(const LiveSet&) = delete;

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

gcheap::HeapOptions collecting() {
    gcheap::HeapOptions options;  // collects automatically: a refusal collects once, then throws
    options.mark_threads = 2;
    options.parallel_mark_min_bytes = 0;
    options.background_sweeper = false;
    options.background_scavenger = false;
    return options;
}

// Asks `heap` for `bytes` the OS will not commit and checks that the request
// is refused without cost, then that the heap still works.
void check_refused(Heap& heap, std::size_t bytes, bool noscan) {
    LiveSet live(heap, 1000, 64);
    heap.collector().collect();  // mark stacks and helpers exist before we measure
    const MemStats before = heap.read_mem_stats();
    const long rss_before = rss_kib();
    bool threw = false;
    try {
        gcheap::keep_alive(heap.alloc(bytes, noscan));
    } catch (const std::bad_alloc&) {
        threw = true;
    }
    const long rss_after = rss_kib();
    const MemStats after = heap.read_mem_stats();
    INFO("request " << (bytes >> 30) << " GiB; VmRSS " << rss_before << " -> " << rss_after << " KiB; Sys "
                    << before.Sys << " -> " << after.Sys << "; GCSys " << before.GCSys << " -> " << after.GCSys);
    CHECK(threw);
    CHECK(rss_after - rss_before < kSlackKiB);
    CHECK(after.HeapSys == before.HeapSys);
    CHECK(after.Sys < before.Sys + kSysSlack);
    CHECK(check_identities(after) == "");
    // Only a refused request may continue: a granted one would be scanned
    // (noscan false) and kept, which takes minutes for 1 TiB.
    REQUIRE(threw);

    // Still usable: small and large objects, a collection, every check.
    CHECK(live.intact());
    for (int i = 0; i < 1000; ++i) REQUIRE(heap.alloc(48, i % 2 == 0) != nullptr);
    void* big = heap.alloc(256 * kMiB, true);
    REQUIRE(big != nullptr);
    static_cast<unsigned char*>(big)[256 * kMiB - 1] = 1;
    heap.collector().collect();
    CHECK(live.intact());
    CHECK(heap.verify() == nullptr);
    CHECK(check_identities(heap.read_mem_stats()) == "");
    gcheap::keep_alive(big);
}

#define SKIP_IF_KERNEL_OVERCOMMITS()                                                                    \
    do {                                                                                                \
        if (!kernel_refuses_overcommit()) {                                                             \
            WARN("skipped: vm.overcommit_memory=1, the kernel commits any request (as for malloc)");   \
            return;                                                                                     \
        }                                                                                               \
    } while (false)

}  // namespace

TEST_CASE("huge alloc: alloc(1 TiB) throws bad_alloc at once and costs no memory and the heap stays usable", "[huge]") {
    SKIP_IF_KERNEL_OVERCOMMITS();
    Heap heap(collecting());
    check_refused(heap, kTiB, false);
}

TEST_CASE("huge alloc: alloc(4 TiB) throws bad_alloc at once and costs no memory and the heap stays usable", "[huge]") {
    SKIP_IF_KERNEL_OVERCOMMITS();
    Heap heap(gcheap::test::manual_gc());  // no collection in between: the refusal alone
    check_refused(heap, 4 * kTiB, true);
}

TEST_CASE("huge alloc child: alloc(2^46) under an address-space bound", "[.child]") {
    GCHEAP_CHILD_ONLY();
    // The bound lets the 2^46-byte reservation through (plus alignment and
    // 1 GiB for everything else), so the request reaches the commit; it only
    // matters if the heap spends memory on the request anyway, as it once did
    // (68 GiB of metadata for 2^46 bytes: without the bound, an OOM kill).
    const auto vm = static_cast<std::size_t>(status_kib("VmSize:")) * 1024;
    const std::size_t limit = vm + kMaxAllocSize + kArenaSize + (std::size_t{1} << 30);
    const rlimit bound{limit, limit};
    REQUIRE(setrlimit(RLIMIT_AS, &bound) == 0);
    {
        Heap heap(collecting());
        check_refused(heap, kMaxAllocSize, true);
    }
    std::printf("child done\n");
}

TEST_CASE("huge alloc: alloc(2^46) (the largest size accepted) throws bad_alloc at once and the heap stays usable", "[huge]") {
    SKIP_IF_KERNEL_OVERCOMMITS();
    if (kSanitizedAddressSpace) {
        // RLIMIT_AS and sanitizers do not mix; the shadow memory leaves no
        // 2^46-byte hole anyway, so the reservation itself is refused.
        Heap heap(collecting());
        check_refused(heap, kMaxAllocSize, true);
        return;
    }
    const gcheap::test::ChildResult r = gcheap::test::run_child_test("huge alloc child: alloc(2^46) under an address-space bound");
    INFO(r.output);
    CHECK(r.exited);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains("child done"));
}

TEST_CASE("huge alloc: refusals one after another keep the heap's reservation and metadata as they were", "[huge]") {
    SKIP_IF_KERNEL_OVERCOMMITS();
    Heap heap(gcheap::test::manual_gc());
    void* first = heap.alloc(100 * kMiB, true);
    const std::size_t arenas = heap.arena_index().arena_count();
    const std::size_t meta = heap.arena_index().sys_bytes();
    for (const std::size_t bytes : {kTiB, 4 * kTiB, kMaxAllocSize, kTiB}) {
        // REQUIRE: a granted request must not be followed by the next, larger one.
        REQUIRE_THROWS_AS(heap.alloc(bytes, true), std::bad_alloc);
        CHECK(heap.arena_index().arena_count() == arenas);  // no metadata for what was never committed
        CHECK(heap.arena_index().sys_bytes() == meta);
    }
    // The tail of the 128 MiB reserved for the first object still serves next.
    const auto next = reinterpret_cast<std::uintptr_t>(heap.alloc(kPageSize * 4, true));
    const auto first_base = reinterpret_cast<std::uintptr_t>(first);
    CHECK(next >= first_base + 100 * kMiB);
    CHECK(next < (first_base & ~(kArenaSize - 1)) + 2 * kArenaSize);
    CHECK(heap.arena_index().arena_count() == arenas);
    CHECK(heap.verify() == nullptr);
    CHECK(check_identities(heap.read_mem_stats()) == "");
    gcheap::keep_alive(first);
}

TEST_CASE("huge alloc: ordinary large allocations still work and are zeroed", "[huge]") {
    Heap heap(gcheap::test::manual_gc());
    for (const std::size_t bytes : {100 * kMiB, 256 * kMiB, 1024 * kMiB}) {
        auto* p = static_cast<unsigned char*>(heap.alloc(bytes, true));
        REQUIRE(p != nullptr);
        CHECK(p[0] == 0);
        CHECK(p[bytes - 1] == 0);
        p[0] = p[bytes - 1] = 0xAB;
        ObjectRef ref;
        CHECK(heap.find_object(reinterpret_cast<std::uintptr_t>(p) + bytes / 2, ref));
        CHECK(ref.base == reinterpret_cast<std::uintptr_t>(p));
    }
    CHECK(heap.verify() == nullptr);
    CHECK(check_identities(heap.read_mem_stats()) == "");
}

TEST_CASE("huge alloc: arena metadata becomes resident only as it is written", "[huge][arena]") {
    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string thp_mode;
    std::getline(thp, thp_mode);
    if (thp_mode.find("[always]") != std::string::npos) {
        WARN("skipped: transparent huge pages 'always' may back metadata with 2 MiB pages");
        return;
    }
    OsMemory os;
    ArenaIndex index{os};
    PageHeap pages{os, index};
    Span* span = nullptr;
    {
        std::lock_guard<SpinningMutex> lock(pages.mutex());
        DirtyPages dirty;
        span = pages.alloc_span_locked(1, span_class(0, false), false, dirty);
    }
    REQUIRE(span != nullptr);
    REQUIRE(index.arena_count() == 1);
    const ArenaMeta* meta = index.arena_of(span->base);
    REQUIRE(meta != nullptr);
    // One page of span pointers (the span's) and the page of released bits
    // (the 4 MiB committed): 2 of the 17 pages. Value-initialising the
    // metadata would make all of them resident.
    const std::size_t os_page = OsMemory::os_page_size();
    const std::size_t meta_pages = (sizeof(ArenaMeta) + os_page - 1) / os_page;
    std::vector<unsigned char> resident(meta_pages);
    REQUIRE(::mincore(const_cast<ArenaMeta*>(meta), meta_pages * os_page, resident.data()) == 0);
    std::size_t count = 0;
    for (unsigned char r : resident) count += r & 1;
    INFO(count << " of " << meta_pages << " metadata pages resident");
    CHECK(count <= 3);
    std::lock_guard<SpinningMutex> lock(pages.mutex());
    CHECK(pages.verify_locked() == nullptr);
}
