// Relocation help: is_sparse, relocate (contents, class, kind, errors) and the
// Compactor policy; relocating the survivors of sparse spans frees the spans;
// the lock-free object_info() under concurrent collections and sweeping.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace gcheap::detail;

namespace {

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

void collect(Heap& heap) {
    gcheap::test::clear_stack();
    heap.collector().collect();
}

ObjectInfo info_of(const Heap& heap, const void* p) {
    ObjectInfo info;
    REQUIRE(heap.object_info(p, info));
    return info;
}

// Survivors one per span, as in scenario 3: `spans` spans of the 16-byte
// class, each keeping its first object, filled with a recognisable value.
[[gnu::noinline]] void make_survivors(Heap& heap, std::vector<std::uint64_t*>& roots, std::size_t spans) {
    for (std::size_t i = 0; i < spans * 512; ++i) {
        auto* p = static_cast<std::uint64_t*>(heap.alloc(16, false));
        p[0] = i;
        p[1] = ~i;
        if (i % 512 == 0) roots.push_back(p);
    }
}

[[gnu::noinline]] std::size_t relocate_sparse(Heap& heap, std::vector<std::uint64_t*>& roots) {
    std::size_t moved = 0;
    for (std::uint64_t*& slot : roots) {
        if (!heap.is_sparse(slot, 0.25)) continue;
        slot = static_cast<std::uint64_t*>(heap.relocate(slot, 16));
        ++moved;
    }
    return moved;
}

}  // namespace

TEST_CASE("fragmentation relocate: copies keep contents, size class and kind", "[frag][relocate]") {
    Heap heap(gcheap::test::no_gc());
    for (std::size_t size : {16, 24, 100, 1024, 5000, 32768, 40000, 300000}) {
        for (bool noscan : {false, true}) {
            CAPTURE(size, noscan);
            auto* p = static_cast<unsigned char*>(heap.alloc(size, noscan));
            for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<unsigned char>(i * 7 + size);
            auto* q = static_cast<unsigned char*>(heap.relocate(p, size));
            REQUIRE(q != p);
            CHECK(std::memcmp(p, q, size) == 0);
            const ObjectInfo a = info_of(heap, p);
            const ObjectInfo b = info_of(heap, q);
            CHECK(b.base == addr(q));
            CHECK(b.size_class == a.size_class);
            CHECK(b.size == a.size);
            CHECK(b.noscan == noscan);
        }
    }
    // 8-byte objects from alloc_aligned keep their class (a plain alloc of 8
    // noscan bytes would pick the tiny allocator).
    void* eight = heap.alloc_aligned(8, 8, true);
    CHECK(info_of(heap, heap.relocate(eight, 8)).size_class == 1);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("fragmentation relocate: a tiny object goes back to the tiny allocator", "[frag][relocate]") {
    Heap heap(gcheap::test::no_gc());
    auto* a = static_cast<std::uint32_t*>(heap.alloc(4, true));
    auto* b = static_cast<std::uint32_t*>(heap.alloc(4, true));  // same 16-byte block, interior
    *a = 0xAAAA;
    *b = 0xBBBB;
    REQUIRE(info_of(heap, b).base != addr(b));
    auto* moved = static_cast<std::uint32_t*>(heap.relocate(b, sizeof *b));
    CHECK(*moved == 0xBBBB);
    CHECK(*b == 0xBBBB);
    CHECK(info_of(heap, moved).size_class == kTinySizeClass);
    CHECK(info_of(heap, moved).noscan);
}

TEST_CASE("fragmentation relocate: bad pointers and thresholds throw with a clear message", "[frag][relocate]") {
    Heap heap(gcheap::test::no_gc());
    int local = 0;
    CHECK_THROWS_WITH(heap.is_sparse(&local, 0.5), Catch::Contains("does not point into an object of the heap"));
    CHECK_THROWS_AS(heap.relocate(&local, sizeof local), std::invalid_argument);
    auto* p = static_cast<char*>(heap.alloc(64, false));
    CHECK_THROWS_WITH(heap.relocate(p + 8, 8), Catch::Contains("points inside an object"));
    CHECK_THROWS_WITH(heap.relocate(p, 65), Catch::Contains("does not fit"));
    CHECK_THROWS_WITH(heap.is_sparse(p, 1.5), Catch::Contains("not in [0, 1]"));
    CHECK_THROWS_AS(heap.is_sparse(p, -0.1), std::invalid_argument);
    CHECK(heap.is_sparse(p, 0.5));  // 1 of 128 slots
    CHECK_FALSE(heap.is_sparse(p, 0.0));
    void* large = heap.alloc(100000, false);
    CHECK_FALSE(heap.is_sparse(large, 1.0));  // a large object is never sparse
    CHECK(heap.is_sparse(static_cast<char*>(large) + 5000, 0.5) == false);
}

TEST_CASE("fragmentation relocate: relocating the survivors of sparse spans frees the spans", "[frag][relocate][gc]") {
    Heap heap(gcheap::test::manual_gc());
    constexpr std::size_t kSpans = 64;
    std::vector<std::uint64_t*> roots;
    roots.reserve(kSpans);
    heap.collector().roots().add(roots.data(), roots.data() + kSpans);
    make_survivors(heap, roots, kSpans);
    collect(heap);
    const gcheap::FragmentationReport before = heap.fragmentation_report();
    INFO(gcheap::to_text(before));

    CHECK(relocate_sparse(heap, roots) == kSpans);
    for (std::size_t k = 0; k < kSpans; ++k) {
        CHECK(roots[k][0] == k * 512);
        CHECK(roots[k][1] == ~(k * 512));
    }
    collect(heap);
    const gcheap::FragmentationReport after = heap.fragmentation_report();
    INFO(gcheap::to_text(after));
    // The copies share one span (plus the pages of a few objects a stale stack word may pin).
    CHECK(after.stats.HeapInuse + (kSpans - 4) * kPageSize <= before.stats.HeapInuse);
    CHECK(after.wasted_bytes < before.wasted_bytes);
    for (std::size_t k = 0; k < kSpans; ++k) CHECK(roots[k][0] == k * 512);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("fragmentation relocate: object_info, is_sparse and relocate while other threads collect and sweep",
          "[frag][relocate][gc][threads]") {
    // object_info() takes no lock: it reads a span that the background
    // sweeper or an allocating thread may be sweeping at the same time. For
    // an object its caller keeps, every answer must still find the object,
    // with its size and class, and copies must keep the contents.
    gcheap::HeapOptions options;
    options.gc_percent = 100;
    options.mark_threads = 2;
    options.parallel_mark_min_bytes = 0;
    options.background_sweeper = true;
    options.background_scavenger = false;
    Heap heap(options);
    constexpr std::size_t kKept = 256;
    std::vector<std::uint64_t*> kept(kKept, nullptr);
    heap.collector().roots().add(kept.data(), kept.data() + kKept);
    for (std::size_t k = 0; k < kKept; ++k) {
        kept[k] = static_cast<std::uint64_t*>(heap.alloc(16, false));
        kept[k][0] = k;
        kept[k][1] = ~k;
    }
    std::atomic<bool> done{false};
    std::thread churn([&] {
        // Garbage of mixed sizes: the pacer starts cycles, and their sweeps
        // (background and on allocation) run under the relocating thread.
        static constexpr std::size_t kSizes[] = {16, 48, 16, 256, 16, 1024, 16, 40000};
        for (std::size_t i = 0; !done.load(std::memory_order_relaxed); ++i) {
            gcheap::keep_alive(heap.alloc(kSizes[i % 8], (i & 1) != 0));
        }
        heap.unregister_current_thread();
    });
    const std::uint32_t gc_before = heap.collector().num_gc();
    std::size_t lookups = 0, not_found = 0, wrong = 0, moved = 0, corrupted = 0;
    // At least 200 rounds and 20 cycles; the time limit only bounds a
    // starved churn thread on a loaded machine (the num_gc check then fails).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (int round = 0; round < 200 || heap.collector().num_gc() < gc_before + 20; ++round) {
        if (std::chrono::steady_clock::now() > deadline) break;
        for (std::size_t k = 0; k < kKept; ++k) {
            ObjectInfo info;
            ++lookups;
            if (!heap.object_info(kept[k] + 1, info)) {  // an interior pointer
                ++not_found;
                continue;
            }
            if (info.base != addr(kept[k]) || info.size != 16 || info.size_class != 2 || info.noscan) ++wrong;
            (void)heap.is_sparse(kept[k], 0.5);
            if ((k + static_cast<std::size_t>(round)) % 16 == 0) {
                kept[k] = static_cast<std::uint64_t*>(heap.relocate(kept[k], 16));
                ++moved;
            }
            if (kept[k][0] != k || kept[k][1] != ~k) ++corrupted;
        }
    }
    // Unregistered before joining: the churn thread may start one more
    // collection, and under TSan a thread blocked in pthread_join cannot be
    // stopped (docs/design.md, "Stopping the world").
    heap.unregister_current_thread();
    done.store(true);
    churn.join();
    INFO(lookups << " lookups, " << moved << " relocations");
    CHECK(heap.collector().num_gc() >= gc_before + 20);  // the race was there to be lost
    CHECK(not_found == 0);
    CHECK(wrong == 0);
    CHECK(corrupted == 0);
    CHECK(moved > 0);
    heap.collector().roots().remove(kept.data(), kept.data() + kKept);
    CHECK(heap.verify() == nullptr);
}

namespace {

struct Node {
    std::uint64_t id;
    Node* next;
};

// Roots for the public API tests: the default heap scans registered ranges.
Node* g_nodes[64];

[[gnu::noinline]] void fill_sparse(std::size_t from, std::size_t to) {
    for (std::size_t i = 0; i < (to - from) * 256; ++i) {
        Node* n = gcheap::make<Node>(Node{i, nullptr});
        if (i % 256 == 0) g_nodes[from + i / 256] = n;
    }
}

[[gnu::noinline]] void collect_default() {
    gcheap::test::clear_stack();
    gcheap::collect();
}

struct Range {  // a container view over g_nodes[0, size)
    std::size_t size_;
    Node** begin() const { return g_nodes; }
    Node** end() const { return g_nodes + size_; }
    std::size_t size() const { return size_; }
};

}  // namespace

TEST_CASE("fragmentation relocate: the public template and the Compactor policy", "[frag][relocate][api]") {
    gcheap::add_roots(std::begin(g_nodes), std::end(g_nodes));
    fill_sparse(0, 16);
    collect_default();
    for (std::size_t i = 0; i < 16; ++i) REQUIRE(gcheap::is_sparse(g_nodes[i], 0.25));

    Node* copy = gcheap::relocate(g_nodes[0]);
    CHECK(copy->id == 0);
    CHECK(copy != g_nodes[0]);
    g_nodes[0] = copy;

    gcheap::Compactor compactor(0.25, 8);
    Range range{4};
    CHECK(compactor.compact_if_grown(range) == 0);  // below min_size
    range.size_ = 16;
    const std::size_t moved = compactor.compact_if_grown(range);
    CHECK(moved >= 14);  // the first copy's span is no longer sparse, nor maybe the span the copies fill
    CHECK(compactor.size_at_last_compaction() == 16);
    for (std::size_t i = 0; i < 16; ++i) CHECK(g_nodes[i]->id == i * 256);
    CHECK(compactor.compact_if_grown(range) == 0);  // not grown
    range.size_ = 31;
    CHECK(compactor.compact_if_grown(range) == 0);  // not doubled
    fill_sparse(16, 32);
    collect_default();
    range.size_ = 32;
    CHECK(compactor.compact_if_grown(range) >= 15);
    for (std::size_t i = 0; i < 32; ++i) CHECK(g_nodes[i]->id == (i % 16) * 256);
    gcheap::remove_roots(std::begin(g_nodes), std::end(g_nodes));
}
