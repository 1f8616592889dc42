// Fragmentation report: per-class figures, the exact reconciliation with
// MemStats (HeapInuse - HeapAlloc == wasted bytes) at every read — after
// collections and while threads allocate — and the text and JSON renderings.
#include "gc/collector.hpp"
#include "runtime/fragmentation.hpp"
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cctype>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace gcheap::detail;
using gcheap::FragmentationReport;
using gcheap::SizeClassFragmentation;

namespace {

// Every equation that ties a report to the MemStats read with it, and its
// own totals together; returns the first that fails, or "".
std::string check_report(const FragmentationReport& r) {
    const gcheap::MemStats& s = r.stats;
    if (s.HeapInuse - s.HeapAlloc != r.wasted_bytes) return "HeapInuse - HeapAlloc != wasted_bytes";
    if (s.HeapInuse != r.small_inuse_bytes + r.large.inuse_bytes) return "HeapInuse != small + large in-use bytes";
    if (s.HeapAlloc != r.small_live_bytes + r.large.inuse_bytes) return "HeapAlloc != small live + large bytes";
    std::uint64_t wasted = 0, spans = 0, inuse = 0, live = 0;
    std::array<std::uint64_t, gcheap::kOccupancyBuckets> occupancy{};
    for (const SizeClassFragmentation& c : r.classes) {
        const std::string at = " (class " + std::to_string(c.size_class) + ")";
        if (c.spans == 0) return "a listed class has no spans" + at;
        if (c.wasted_bytes != c.free_slot_bytes + c.tail_bytes) return "wasted != free slots + tail" + at;
        if (c.inuse_bytes != c.live_bytes + c.wasted_bytes) return "in use != live + wasted" + at;
        if (c.live_objects > c.slots) return "more live objects than slots" + at;
        if (c.size_class < gcheap::detail::kBySizeClasses &&
            c.live_objects != s.BySize[c.size_class].Mallocs - s.BySize[c.size_class].Frees)
            return "live objects != BySize Mallocs - Frees" + at;
        std::uint64_t bucketed = 0;
        for (std::size_t b = 0; b < gcheap::kOccupancyBuckets; ++b) {
            bucketed += c.occupancy[b];
            occupancy[b] += c.occupancy[b];
        }
        if (bucketed != c.spans) return "occupancy histogram does not add up to the spans" + at;
        wasted += c.wasted_bytes;
        spans += c.spans;
        inuse += c.inuse_bytes;
        live += c.live_bytes;
    }
    if (wasted != r.wasted_bytes || spans != r.small_spans || inuse != r.small_inuse_bytes ||
        live != r.small_live_bytes)
        return "class rows do not add up to the totals";
    if (occupancy != r.occupancy) return "class histograms do not add up to the total histogram";
    if (r.large.inuse_bytes != r.large.requested_bytes + r.large.rounding_bytes) return "large rounding";
    return "";
}

const SizeClassFragmentation* find_class(const FragmentationReport& r, std::uint32_t size_class) {
    for (const SizeClassFragmentation& c : r.classes)
        if (c.size_class == size_class) return &c;
    return nullptr;
}

void collect(Heap& heap) {
    gcheap::test::clear_stack();
    heap.collector().collect();
}

// A minimal JSON syntax check (objects, arrays, strings without escapes,
// unsigned numbers): enough to tell that to_json() emits well-formed JSON.
struct JsonChecker {
    const std::string& s;
    std::size_t i = 0;
    bool value() {
        if (i >= s.size()) return false;
        if (s[i] == '{') return sequence('}', true);
        if (s[i] == '[') return sequence(']', false);
        if (s[i] == '"') return string();
        const std::size_t start = i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        return i > start;
    }
    bool string() {
        if (s[i] != '"') return false;
        for (++i; i < s.size() && s[i] != '"'; ++i)
            if (s[i] == '\\') return false;
        return i++ < s.size();
    }
    bool sequence(char close, bool members) {
        ++i;
        if (i < s.size() && s[i] == close) return ++i, true;
        for (;;) {
            if (members && !(string() && i < s.size() && s[i++] == ':')) return false;
            if (!value() || i >= s.size()) return false;
            if (s[i] == close) return ++i, true;
            if (s[i++] != ',') return false;
        }
    }
    bool whole() { return value() && i == s.size(); }
};

}  // namespace

TEST_CASE("fragmentation report: a fresh heap has nothing in use and nothing wasted", "[frag]") {
    Heap heap(gcheap::test::no_gc());
    const FragmentationReport r = heap.fragmentation_report();
    CHECK(check_report(r).empty());
    CHECK(r.classes.empty());
    CHECK(r.wasted_bytes == 0);
    CHECK(r.large.objects == 0);
}

TEST_CASE("fragmentation report: slots, free slots, tails and page rounding per class", "[frag]") {
    Heap heap(gcheap::test::no_gc());
    heap.alloc(16, false);                               // class 2: 1 of 512 slots
    for (int i = 0; i < 341; ++i) heap.alloc(24, true);  // class 3: one full span, 8-byte tail
    heap.alloc(40000, false);                            // large: 5 pages for 40000 bytes
    const FragmentationReport r = heap.fragmentation_report();
    INFO(gcheap::to_text(r));
    REQUIRE(check_report(r).empty());
    REQUIRE(r.classes.size() == 2);

    const SizeClassFragmentation* c2 = find_class(r, 2);
    REQUIRE(c2 != nullptr);
    CHECK(c2->spans == 1);
    CHECK(c2->noscan_spans == 0);
    CHECK(c2->slots == 512);
    CHECK(c2->live_objects == 1);
    CHECK(c2->live_bytes == 16);
    CHECK(c2->wasted_bytes == 8192 - 16);
    CHECK(c2->tail_bytes == 0);
    CHECK(c2->occupancy[0] == 1);  // 0.2% full

    const SizeClassFragmentation* c3 = find_class(r, 3);
    REQUIRE(c3 != nullptr);
    CHECK(c3->noscan_spans == 1);
    CHECK(c3->live_objects == 341);
    CHECK(c3->free_slot_bytes == 0);
    CHECK(c3->tail_bytes == 8);
    CHECK(c3->wasted_bytes == 8);
    CHECK(c3->occupancy[5] == 1);  // full

    CHECK(r.large.objects == 1);
    CHECK(r.large.pages == 5);
    CHECK(r.large.requested_bytes == 40000);
    CHECK(r.large.rounding_bytes == 5 * 8192 - 40000);
    CHECK(r.wasted_bytes == 8192 - 16 + 8);  // large rounding is inside HeapAlloc, as in Go
}

TEST_CASE("fragmentation report: occupancy buckets have the documented bounds", "[frag]") {
    CHECK(occupancy_bucket(0, 512) == 0);
    CHECK(occupancy_bucket(5, 512) == 0);  // 0.98%
    CHECK(occupancy_bucket(6, 512) == 1);  // 1.17%
    CHECK(occupancy_bucket(1, 100) == 1);  // exactly 1%
    CHECK(occupancy_bucket(10, 100) == 2);
    CHECK(occupancy_bucket(24, 100) == 2);
    CHECK(occupancy_bucket(25, 100) == 3);
    CHECK(occupancy_bucket(50, 100) == 4);
    CHECK(occupancy_bucket(74, 100) == 4);
    CHECK(occupancy_bucket(75, 100) == 5);
    CHECK(occupancy_bucket(1, 1) == 5);
    CHECK(std::string(gcheap::occupancy_bucket_label(0)) == "0-1%");
    CHECK(std::string(gcheap::occupancy_bucket_label(5)) == "75-100%");
}

TEST_CASE("fragmentation report: totals reconcile with MemStats and the slow recount for mixed sizes", "[frag]") {
    Heap heap(gcheap::test::no_gc());
    std::mt19937 rng(7);
    for (int i = 0; i < 100000; ++i) {
        const std::size_t size = std::uniform_int_distribution<int>(0, 99)(rng) < 98
                                     ? std::uniform_int_distribution<std::size_t>(1, 4096)(rng)
                                     : std::uniform_int_distribution<std::size_t>(32769, 200000)(rng);
        heap.alloc(size, (i % 3) == 0);  // noscan sizes under 16 go through the tiny allocator
    }
    const FragmentationReport r = heap.fragmentation_report();
    REQUIRE(check_report(r).empty());
    const SlowCounts slow = heap.count_slow();
    CHECK(slow.inuse_bytes == r.stats.HeapInuse);
    CHECK(slow.alloc_bytes == r.stats.HeapAlloc);
    CHECK(slow.spans == r.small_spans + r.large.objects);
    // Tiny blocks count as their 16-byte slot, as HeapAlloc counts them.
    const SizeClassFragmentation* c2 = find_class(r, 2);
    REQUIRE(c2 != nullptr);
    CHECK(c2->noscan_spans > 0);
}

namespace {

// 64 spans of the 16-byte class, each keeping only its first object: the
// pointers live in `roots`, registered with the collector.
[[gnu::noinline]] void make_sparse_spans(Heap& heap, std::vector<void*>& roots, std::size_t spans) {
    for (std::size_t i = 0; i < spans * 512; ++i) {
        void* p = heap.alloc(16, false);
        if (i % 512 == 0) roots.push_back(p);
    }
}

}  // namespace

TEST_CASE("fragmentation report: after a collection, survivors one per span show as 0-1% spans", "[frag][gc]") {
    // On the malloc heap, as the default heap is: a Heap object on the stack
    // is scanned with the stack, and its bytes that were never written still
    // hold whatever earlier tests left there. In one process after the
    // collector tests, that pinned a dozen objects of one span (found with
    // the after-mark hook: no other scanned word pointed to them).
    auto heap_owner = std::make_unique<Heap>(gcheap::test::manual_gc());
    Heap& heap = *heap_owner;
    std::vector<void*> roots;
    roots.reserve(64);
    heap.collector().roots().add(roots.data(), roots.data() + 64);
    make_sparse_spans(heap, roots, 64);
    const FragmentationReport full = heap.fragmentation_report();
    REQUIRE(check_report(full).empty());
    CHECK(find_class(full, 2)->occupancy[5] >= 64);

    collect(heap);
    const FragmentationReport r = heap.fragmentation_report();
    INFO(gcheap::to_text(r));
    REQUIRE(check_report(r).empty());
    const SizeClassFragmentation* c2 = find_class(r, 2);
    REQUIRE(c2 != nullptr);
    CHECK(c2->occupancy[0] >= 64);  // a stale stack word may pin a few more
    CHECK(c2->live_objects >= 64);
    CHECK(c2->live_objects < 64 + 16);
    CHECK(c2->wasted_bytes >= 64 * (8192 - 16 * 16));
    const std::string text = gcheap::to_text(r);
    // Worst first: class 2's row is the first row of the table.
    const std::size_t table = text.find("75-100%\n");
    REQUIRE(table != std::string::npos);
    CHECK(text.compare(table + 8, 13, "    2    16 B") == 0);
}

TEST_CASE("fragmentation report: exact at every read while four threads allocate and collect", "[frag][threads]") {
    gcheap::HeapOptions options = gcheap::test::manual_gc();
    options.gc_percent = 100;  // automatic cycles too: reads also land between a mark and its lazy sweep
    options.background_sweeper = true;
    Heap heap(options);
    constexpr int kThreads = 4;
    std::atomic<int> running{kThreads};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t) + 11);
            for (int i = 0; i < 100000; ++i) {
                const unsigned pick = std::uniform_int_distribution<unsigned>(0, 999)(rng);
                const std::size_t size = pick < 3 ? std::uniform_int_distribution<std::size_t>(32769, 100000)(rng)
                                                  : std::uniform_int_distribution<std::size_t>(1, 2048)(rng);
                static_cast<unsigned char*>(heap.alloc(size, (i & 1) != 0))[0] = 1;
                if (t == 0 && i % 25000 == 0) heap.collector().collect();
            }
            heap.unregister_current_thread();
            running--;
        });
    }
    int reads = 0;
    std::string failure;
    while (running.load() > 0 || reads == 0) {
        const FragmentationReport r = heap.fragmentation_report();
        failure = check_report(r);
        if (!failure.empty()) break;
        ++reads;
    }
    for (auto& t : threads) t.join();
    INFO("reads while allocating: " << reads);
    REQUIRE(failure.empty());
    const FragmentationReport r = heap.fragmentation_report();
    CHECK(check_report(r).empty());
    CHECK(r.stats.NumGC >= 4);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("fragmentation report: JSON is well formed and carries the figures", "[frag]") {
    Heap heap(gcheap::test::no_gc());
    heap.alloc(16, false);
    heap.alloc(100, true);
    heap.alloc(50000, false);
    const FragmentationReport r = heap.fragmentation_report();
    const std::string json = gcheap::to_json(r);
    INFO(json);
    JsonChecker checker{json};
    CHECK(checker.whole());
    CHECK_THAT(json, Catch::Contains("\"heap_inuse\":" + std::to_string(r.stats.HeapInuse) + ","));
    CHECK_THAT(json, Catch::Contains("\"wasted_bytes\":" + std::to_string(r.wasted_bytes) + ","));
    CHECK_THAT(json, Catch::Contains("{\"size_class\":2,\"object_size\":16,"));
    CHECK_THAT(json, Catch::Contains("\"requested_bytes\":50000,"));
    CHECK_THAT(json, Catch::Contains(
                         "\"occupancy_buckets\":[\"0-1%\",\"1-10%\",\"10-25%\",\"25-50%\",\"50-75%\",\"75-100%\"]"));
}

TEST_CASE("fragmentation report: text lists the totals, every class and large objects", "[frag]") {
    Heap heap(gcheap::test::no_gc());
    heap.alloc(16, false);
    for (int i = 0; i < 100; ++i) heap.alloc(1024, false);
    heap.alloc(50000, false);
    const FragmentationReport r = heap.fragmentation_report();
    const std::string worst = gcheap::to_text(r);
    const std::string by_class = gcheap::to_text(r, gcheap::ReportOrder::kByClass);
    INFO(worst);
    CHECK_THAT(worst, Catch::Contains("wasted in in-use spans"));
    CHECK_THAT(worst, Catch::Contains("large objects: 1 objects, 7 pages"));
    CHECK_THAT(worst, Catch::Contains("1/512"));
    CHECK_THAT(worst, Catch::Contains("100/104"));  // 13 spans of 8 slots
    // Class 32 (1024 B) wastes 4 slots' worth; class 2 wastes almost a page: class 2 first.
    CHECK(worst.find("1/512") < worst.find("100/104"));
    CHECK(by_class.find("1/512") < by_class.find("100/104"));
}

TEST_CASE("fragmentation report: the public function reads the default heap", "[frag][api]") {
    for (int i = 0; i < 1000; ++i) gcheap::alloc(48);
    const FragmentationReport r = gcheap::fragmentation_report();
    CHECK(check_report(r).empty());
    const SizeClassFragmentation* c5 = find_class(r, 5);
    REQUIRE(c5 != nullptr);
    CHECK(c5->live_objects >= 1000);
}
