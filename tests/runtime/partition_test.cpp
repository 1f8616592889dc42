// Partitions: allocations inside a PartitionScope come from the partition's
// own spans and never share one with another partition; scopes nest and
// restore; threads in different partitions run concurrently; MemStats stays
// exact and the per-partition breakdown adds up to it; collection is global
// (pointers across partitions keep objects alive); destroying a partition
// with live objects hands its spans to the default partition.
#include "gc/collector.hpp"
#include "runtime/fragmentation.hpp"
#include "runtime/heap.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>
#include <gcheap/partition.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace gcheap::detail;
using gcheap::Partition;
using gcheap::PartitionScope;

namespace {

Span* span_of(Heap& heap, const void* p) {
    ObjectRef ref;
    REQUIRE(heap.find_object(reinterpret_cast<std::uintptr_t>(p), ref));
    return ref.span;
}

std::set<Span*> spans_of(Heap& heap, const std::vector<void*>& objects) {
    std::set<Span*> spans;
    for (void* p : objects) spans.insert(span_of(heap, p));
    return spans;
}

bool disjoint(const std::set<Span*>& a, const std::set<Span*>& b) {
    for (Span* s : a)
        if (b.count(s) != 0) return false;
    return true;
}

// Sizes covering tiny, several small classes of both kinds, and one large.
void* alloc_mixed(Heap& heap, std::size_t i) {
    static constexpr std::size_t kSizes[] = {8, 12, 16, 24, 48, 64, 100, 256, 1024, 5000};
    const std::size_t size = kSizes[i % std::size(kSizes)];
    return heap.alloc(size, (i / std::size(kSizes)) % 2 == 0);
}

// The breakdown's sums against the MemStats read with it.
std::string check_breakdown(const gcheap::FragmentationReport& r) {
    std::uint64_t inuse = 0, live = 0;
    for (const gcheap::PartitionFragmentation& p : r.partitions) {
        if (p.inuse_bytes != p.live_bytes + p.wasted_bytes) return "partition " + p.name + ": inuse != live + wasted";
        inuse += p.inuse_bytes;
        live += p.live_bytes;
    }
    if (inuse != r.stats.HeapInuse) return "partitions' inuse bytes != HeapInuse";
    if (live != r.stats.HeapAlloc) return "partitions' live bytes != HeapAlloc";
    return "";
}

void collect(Heap& heap) {
    gcheap::test::clear_stack();
    heap.collector().collect();
}

}  // namespace

TEST_CASE("partition: allocations never share a span with another partition", "[partition]") {
    Heap heap(gcheap::test::no_gc());
    Partition a(heap, "a");
    Partition b(heap, "b");
    std::vector<void*> in_default, in_a, in_b;
    // Interleaved, so that without partitions they would share spans.
    for (std::size_t i = 0; i < 3000; ++i) {
        in_default.push_back(alloc_mixed(heap, i));
        {
            PartitionScope scope(a);
            in_a.push_back(alloc_mixed(heap, i));
        }
        {
            PartitionScope scope(b);
            in_b.push_back(alloc_mixed(heap, i));
        }
    }
    const auto sd = spans_of(heap, in_default), sa = spans_of(heap, in_a), sb = spans_of(heap, in_b);
    CHECK(disjoint(sd, sa));
    CHECK(disjoint(sd, sb));
    CHECK(disjoint(sa, sb));
    const std::uint8_t ia = (*sa.begin())->partition, ib = (*sb.begin())->partition;
    CHECK(ia != 0);
    CHECK(ib != 0);
    CHECK(ia != ib);
    for (Span* s : sa) CHECK(s->partition == ia);
    for (Span* s : sb) CHECK(s->partition == ib);
    for (Span* s : sd) CHECK(s->partition == 0);

    const gcheap::FragmentationReport r = heap.fragmentation_report();
    INFO(gcheap::to_text(r));
    CHECK(check_breakdown(r).empty());
    REQUIRE(r.partitions.size() == 3);
    CHECK(r.partitions[0].name == "default");
    const gcheap::PartitionFragmentation pa = gcheap::partition_stats(a);
    CHECK(pa.name == "a");
    CHECK(pa.live_objects > 0);
    CHECK(pa.large_objects == 0);  // 5000 B is small
    CHECK(pa.small_spans == sa.size());
    CHECK(heap.verify() == nullptr);
    CHECK(gcheap::test::check_identities(heap.read_mem_stats()).empty());
}

TEST_CASE("partition: tiny objects get the partition's own tiny block", "[partition]") {
    Heap heap(gcheap::test::no_gc());
    Partition p(heap, "tiny");
    void* outside = heap.alloc(4, true);
    void* inside = nullptr;
    {
        PartitionScope scope(p);
        inside = heap.alloc(4, true);
    }
    void* outside2 = heap.alloc(4, true);
    // The default partition's block continues where it stopped.
    CHECK(static_cast<char*>(outside2) == static_cast<char*>(outside) + 4);
    CHECK(span_of(heap, inside) != span_of(heap, outside));
    CHECK(span_of(heap, inside)->partition != 0);
}

TEST_CASE("partition: nested scopes restore the previous partition", "[partition]") {
    Heap heap(gcheap::test::no_gc());
    Partition outer(heap, "outer");
    Partition inner(heap, "inner");
    const auto partition_now = [&] { return span_of(heap, heap.alloc(64, false))->partition; };
    CHECK(partition_now() == 0);
    std::uint8_t outer_index = 0, inner_index = 0;
    {
        PartitionScope s1(outer);
        outer_index = partition_now();
        {
            PartitionScope s2(inner);
            inner_index = partition_now();
            {
                PartitionScope s3(outer);  // re-entering an outer partition is fine
                CHECK(partition_now() == outer_index);
            }
            CHECK(partition_now() == inner_index);
        }
        CHECK(partition_now() == outer_index);
    }
    CHECK(partition_now() == 0);
    CHECK(outer_index != 0);
    CHECK(inner_index != 0);
    CHECK(outer_index != inner_index);
}

TEST_CASE("partition: a scope survives the thread using another heap in between", "[partition]") {
    Heap heap(gcheap::test::no_gc());
    Heap other(gcheap::test::no_gc());
    Partition p(heap, "p");
    PartitionScope scope(p);
    const std::uint8_t index = span_of(heap, heap.alloc(32, false))->partition;
    CHECK(index != 0);
    other.alloc(32, false);  // takes the thread's TLS slot
    CHECK(span_of(heap, heap.alloc(32, false))->partition == index);
    CHECK(span_of(other, other.alloc(32, false))->partition == 0);
}

TEST_CASE("partition: threads in different partitions allocate concurrently", "[partition][threads]") {
    Heap heap(gcheap::test::no_gc());
    constexpr int kThreads = 4;
    constexpr int kPerThread = 40000;
    Partition p0(heap, "p0"), p1(heap, "p1");
    Partition* parts[] = {&p0, &p1};
    std::vector<std::vector<void*>> objects(kThreads);
    std::atomic<int> running{kThreads};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            // Threads 0 and 2 share p0, 1 and 3 share p1; each also
            // allocates in the default partition and nests scopes.
            PartitionScope scope(*parts[t % 2]);
            for (int i = 0; i < kPerThread; ++i) {
                if (i % 7 == 0) {
                    PartitionScope swap(*parts[(t + 1) % 2]);
                    heap.alloc(48, false);
                }
                objects[static_cast<std::size_t>(t)].push_back(alloc_mixed(heap, static_cast<std::size_t>(i)));
            }
            running--;
        });
    }
    int reads = 0;
    std::string failure;
    while (running.load() > 0 || reads == 0) {
        const gcheap::FragmentationReport r = heap.fragmentation_report();
        failure = gcheap::test::check_identities(r.stats);
        if (failure.empty()) failure = check_breakdown(r);
        if (!failure.empty()) break;
        ++reads;
    }
    for (auto& th : threads) th.join();
    INFO("reads while allocating: " << reads);
    REQUIRE(failure.empty());
    std::set<Span*> s0, s1;
    for (int t = 0; t < kThreads; ++t) {
        for (Span* s : spans_of(heap, objects[static_cast<std::size_t>(t)])) (t % 2 == 0 ? s0 : s1).insert(s);
    }
    CHECK(disjoint(s0, s1));
    const gcheap::MemStats s = heap.read_mem_stats();
    CHECK(gcheap::test::check_identities(s).empty());
    CHECK(s.Mallocs >= std::uint64_t{kThreads} * kPerThread);
    const SlowCounts slow = heap.count_slow();
    CHECK(s.HeapAlloc == slow.alloc_bytes);
    CHECK(s.HeapInuse == slow.inuse_bytes);
    CHECK(heap.verify() == nullptr);
    CHECK(check_breakdown(heap.fragmentation_report()).empty());
}

namespace {

struct Node {
    Node* next;
    std::uint64_t payload;
};

// Root slots for the cross-partition test, in static storage so that the
// test registers them as a root range.
Node* g_root[1];

// A chain default <- a <- b (head in b), built in a frame that then returns.
[[gnu::noinline]] void build_chain(Heap& heap, Partition& a, Partition& b, std::uintptr_t out[3]) {
    auto* in_default = static_cast<Node*>(heap.alloc(sizeof(Node), false));
    in_default->payload = 1;
    Node* in_a;
    {
        PartitionScope scope(a);
        in_a = static_cast<Node*>(heap.alloc(sizeof(Node), false));
    }
    in_a->next = in_default;
    in_a->payload = 2;
    Node* in_b;
    {
        PartitionScope scope(b);
        in_b = static_cast<Node*>(heap.alloc(sizeof(Node), false));
    }
    in_b->next = in_a;
    in_b->payload = 3;
    g_root[0] = in_b;
    // Addresses complemented (an interior pointer would still be a root), so that this frame's stale slots do not keep them.
    out[0] = ~reinterpret_cast<std::uintptr_t>(in_b);
    out[1] = ~reinterpret_cast<std::uintptr_t>(in_a);
    out[2] = ~reinterpret_cast<std::uintptr_t>(in_default);
}

// A span's partition slot may be reused; what is checked is that the
// disguised object is still allocated (or not).
bool allocated(Heap& heap, std::uintptr_t disguised) {
    ObjectRef ref;
    return heap.find_object(~disguised, ref);
}

// Reads the chain in a frame of its own, so that the test's frame never
// holds a pointer into it.
[[gnu::noinline]] std::uint64_t chain_payloads() {
    const Node* n = g_root[0];
    return n->payload * 100 + n->next->payload * 10 + n->next->next->payload;
}

}  // namespace

TEST_CASE("partition: objects across partitions keep each other alive", "[partition][gc]") {
    // Off the stack: a Heap holds words such as its arena's base, which a
    // scan of this frame would take for pointers to the first objects.
    auto owned = std::make_unique<Heap>(gcheap::test::manual_gc());
    Heap& heap = *owned;
    heap.register_current_thread();
    heap.collector().roots().add(std::begin(g_root), std::end(g_root));
    Partition a(heap, "a");
    Partition b(heap, "b");
    std::uintptr_t objects[3];
    build_chain(heap, a, b, objects);
    collect(heap);
    for (std::uintptr_t o : objects) CHECK(allocated(heap, o));
    CHECK(chain_payloads() == 321);
    g_root[0] = nullptr;
    collect(heap);
    // The two partitioned objects are freed. (The default partition's one,
    // the chain's tail, is not checked: a stale word on this thread's stack
    // keeps it in some builds, with or without partitions.)
    CHECK_FALSE(allocated(heap, objects[0]));
    CHECK_FALSE(allocated(heap, objects[1]));
    CHECK(heap.verify() == nullptr);
    CHECK(gcheap::test::check_identities(heap.read_mem_stats()).empty());
    heap.collector().roots().remove(std::begin(g_root), std::end(g_root));
}

namespace {

Node* g_survivors[1];

[[gnu::noinline]] std::pair<std::uint64_t, std::uint64_t> walk_survivors() {
    std::uint64_t count = 0, sum = 0;
    for (const Node* n = g_survivors[0]->next; n != nullptr; n = n->next) {
        ++count;
        sum += n->payload;
    }
    return {count, sum};
}

// A list of 5000 nodes (and a large object) allocated in a partition that is
// destroyed before the function returns; only g_survivors holds them.
[[gnu::noinline]] void fill_and_destroy(Heap& heap) {
    Partition doomed(heap, "doomed");
    Node* head = nullptr;
    {
        PartitionScope scope(doomed);
        for (std::uint64_t i = 0; i < 5000; ++i) {
            auto* n = static_cast<Node*>(heap.alloc(sizeof(Node), false));
            n->next = head;
            n->payload = i;
            head = n;
        }
        auto* big = static_cast<Node*>(heap.alloc(100000, false));
        big->next = head;
        big->payload = 99;
        g_survivors[0] = big;
    }
    // Half of the list becomes garbage before the partition goes.
    Node* n = head;
    for (int i = 0; i < 2500; ++i) n = n->next;
    head->next = n;
}  // ~Partition: its spans, live objects included, go to the default partition

}  // namespace

[[gnu::noinline]] static bool survivors_in_default(Heap& heap) {
    return span_of(heap, g_survivors[0])->partition == 0 && span_of(heap, g_survivors[0]->next)->partition == 0;
}

// One object in `partition`, on a span of its own; the pointer dies with the frame.
[[gnu::noinline]] static bool allocate_in(Heap& heap, Partition& partition) {
    PartitionScope scope(partition);
    void* p = heap.alloc(sizeof(Node), false);
    return span_of(heap, p)->partition != 0 && span_of(heap, p) != span_of(heap, g_survivors[0]->next);
}

TEST_CASE("partition: destroying a partition with live objects is safe", "[partition][gc]") {
    // Exact object counts below: g_survivors is the only root range, and a
    // stale word in some library's data (ASan's, once in CI) must not keep
    // the unlinked half.
    gcheap::HeapOptions options = gcheap::test::manual_gc();
    options.scan_globals = false;
    auto owned = std::make_unique<Heap>(options);  // off the stack, as above
    Heap& heap = *owned;
    heap.register_current_thread();
    heap.collector().roots().add(std::begin(g_survivors), std::end(g_survivors));
    fill_and_destroy(heap);
    CHECK(heap.verify() == nullptr);
    {
        const gcheap::FragmentationReport r = heap.fragmentation_report();
        CHECK(check_breakdown(r).empty());
        REQUIRE(r.partitions.size() == 1);  // the doomed partition's bytes count as the default's
        CHECK(r.partitions[0].large_objects == 1);
    }
    CHECK(survivors_in_default(heap));
    collect(heap);
    // Every survivor is intact; the unlinked half is gone.
    const auto [count, sum] = walk_survivors();
    CHECK(count == 2501);
    CHECK(sum == 4999 + (2499 * 2500) / 2);  // the head, then 2499 .. 0
    const gcheap::MemStats s = heap.read_mem_stats();
    CHECK(gcheap::test::check_identities(s).empty());
    CHECK(s.HeapObjects == 2502);  // the list and the large object
    CHECK(heap.verify() == nullptr);

    // The slot is reused by the next partition, which starts empty, and the
    // thread's cache of the dead partition serves the new one.
    Partition next(heap, "next");
    CHECK(gcheap::partition_stats(next).small_spans == 0);
    CHECK(allocate_in(heap, next));
    CHECK(gcheap::partition_stats(next).small_spans == 1);
    CHECK(heap.verify() == nullptr);
    g_survivors[0] = nullptr;
    collect(heap);
    CHECK(heap.read_mem_stats().HeapObjects <= 2);  // a stale stack word (ASan keeps more) may pin one
    heap.collector().roots().remove(std::begin(g_survivors), std::end(g_survivors));
}

TEST_CASE("partition: a partition destroyed by one thread after others used it", "[partition][threads]") {
    Heap heap(gcheap::test::no_gc());
    auto p = std::make_unique<Partition>(heap, "shared");
    std::atomic<bool> used{false}, destroyed{false};
    std::thread user([&] {
        {
            PartitionScope scope(*p);
            for (int i = 0; i < 1000; ++i) heap.alloc(32, i % 2 == 0);
        }
        used.store(true, std::memory_order_release);
        while (!destroyed.load(std::memory_order_acquire)) std::this_thread::yield();
        // The thread's cache of the destroyed partition is empty now; it
        // keeps allocating in the default partition and in a new one.
        Partition fresh(heap, "fresh");
        PartitionScope scope(fresh);
        for (int i = 0; i < 1000; ++i) heap.alloc(32, false);
    });
    while (!used.load(std::memory_order_acquire)) std::this_thread::yield();
    p.reset();
    CHECK(heap.verify() == nullptr);
    destroyed.store(true, std::memory_order_release);
    user.join();
    CHECK(heap.verify() == nullptr);
    const gcheap::MemStats s = heap.read_mem_stats();
    CHECK(gcheap::test::check_identities(s).empty());
    CHECK(s.HeapObjects == 2000);
}

TEST_CASE("partition: unregistering inside a scope throws and so does a 64th partition", "[partition]") {
    Heap heap(gcheap::test::no_gc());
    heap.register_current_thread();
    {
        Partition p(heap, "p");
        PartitionScope scope(p);
        CHECK_THROWS_AS(heap.unregister_current_thread(), std::logic_error);
    }
    heap.unregister_current_thread();
    std::vector<std::unique_ptr<Partition>> many;
    for (std::size_t i = 1; i < kMaxPartitions; ++i) many.push_back(std::make_unique<Partition>(heap, "x"));
    CHECK_THROWS_AS(Partition(heap, "one too many"), std::length_error);
    many.pop_back();
    CHECK_NOTHROW(Partition(heap, "fits again"));
}

TEST_CASE("partition child: destroyed while a scope is active", "[.child]") {
    GCHEAP_CHILD_ONLY();
    Heap heap(gcheap::test::no_gc());
    auto p = std::make_unique<Partition>(heap, "busy");
    PartitionScope scope(*p);
    heap.alloc(16, false);
    p.reset();  // fatal
}

TEST_CASE("partition: destroying a partition in use is fatal", "[partition]") {
    const gcheap::test::ChildResult r = gcheap::test::run_child_test("partition child: destroyed while a scope is active");
    INFO(r.output);
    CHECK_FALSE(r.exited);
    CHECK(r.output.find("PartitionScope on it was active") != std::string::npos);
}

TEST_CASE("partition: the public API partitions the default heap", "[partition][api]") {
    gcheap::Partition p("public");
    void* outside = gcheap::alloc(64);
    void* inside;
    {
        gcheap::PartitionScope scope(p);
        inside = gcheap::alloc(64);
    }
    Heap& heap = default_heap();
    CHECK(span_of(heap, outside) != span_of(heap, inside));
    const gcheap::FragmentationReport r = gcheap::fragmentation_report();
    CHECK(check_breakdown(r).empty());
    REQUIRE(r.partitions.size() == 2);
    CHECK(r.partitions[1].name == "public");
    CHECK(r.partitions[1].live_objects >= 1);
    CHECK(gcheap::to_json(r).find("\"partitions\":[{\"name\":\"default\"") != std::string::npos);
    CHECK(gcheap::to_text(r).find("public") != std::string::npos);
    gcheap::keep_alive(inside);
    gcheap::keep_alive(outside);
}
