// The collector: what survives a collection and what does not (issue: the
// collector's "Done when" list), each on a fresh heap with manual collections.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

using namespace gcheap::detail;
using gcheap::test::manual_gc;

namespace {

struct Node {
    Node* next;
    std::uint64_t value;
};


// Overwrites a stretch of stack below the caller, so that pointers left in
// dead frames by earlier calls do not act as roots. Conservative collectors
// need this in tests that expect garbage to be freed; samples/ shows users
// the same technique.
[[gnu::noinline]] void clear_stack() {
    volatile char buffer[64 * 1024];
    std::memset(const_cast<char*>(buffer), 0, sizeof buffer);
    gcheap::keep_alive(const_cast<char*>(buffer));
}

[[gnu::noinline]] void allocate_garbage(Heap& heap, int count, std::size_t size) {
    for (int i = 0; i < count; ++i) {
        auto* p = static_cast<std::uint64_t*>(heap.alloc(size, false));
        p[0] = static_cast<std::uint64_t>(i);
    }
}

[[gnu::noinline]] Node* build_list(Heap& heap, int n) {
    Node* head = nullptr;
    for (int i = 0; i < n; ++i) {
        auto* node = static_cast<Node*>(heap.alloc(sizeof(Node), false));
        node->next = head;
        node->value = static_cast<std::uint64_t>(i) * 2654435761u;
        head = node;
    }
    return head;
}

bool list_intact(const Node* head, int n) {
    int count = 0;
    for (const Node* node = head; node != nullptr; node = node->next, ++count) {
        if (node->value != static_cast<std::uint64_t>(n - 1 - count) * 2654435761u) return false;
    }
    return count == n;
}

void collect(Heap& heap) {
    clear_stack();
    heap.collector().collect();
}

}  // namespace

TEST_CASE("collector: unreachable objects are freed", "[gc]") {
    Heap heap(manual_gc());
    heap.alloc(16, false);  // registers this thread
    const gcheap::MemStats before = heap.read_mem_stats();
    allocate_garbage(heap, 100000, 48);
    const gcheap::MemStats full = heap.read_mem_stats();
    CHECK(full.HeapObjects - before.HeapObjects == 100000);
    collect(heap);
    const gcheap::MemStats after = heap.read_mem_stats();
    INFO("objects before " << before.HeapObjects << ", full " << full.HeapObjects << ", after " << after.HeapObjects);
    CHECK(after.HeapObjects < before.HeapObjects + 100);  // a stale stack word may pin a handful
    CHECK(after.HeapAlloc < before.HeapAlloc + 100 * 48);
    CHECK(after.Frees >= 99900);
    CHECK(after.NumGC == 1);
    CHECK(after.NumForcedGC == 1);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("collector: a deep linked list reachable from a local survives intact", "[gc]") {
    Heap heap(manual_gc());
    constexpr int kNodes = 1000000;
    Node* head = build_list(heap, kNodes);
    allocate_garbage(heap, 50000, 32);
    collect(heap);
    REQUIRE(list_intact(head, kNodes));
    const gcheap::MemStats s = heap.read_mem_stats();
    CHECK(s.HeapObjects >= static_cast<std::uint64_t>(kNodes));
    CHECK(s.HeapObjects < static_cast<std::uint64_t>(kNodes) + 1000);
    gcheap::keep_alive(head);
    CHECK(heap.verify() == nullptr);
}
