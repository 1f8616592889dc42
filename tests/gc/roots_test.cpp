// Registered roots (gc/roots.hpp): uncollectable objects, root ranges the
// program unmapped, and the conservative edge cases users ask about
// (unaligned pointers, one-past-the-end pointers). The edge cases need
// certainty about where copies of a pointer are, so they keep pointers in
// noinline helpers and clear the stack, which is what they are about.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "runtime/sanitizers.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>

using namespace gcheap::detail;
using gcheap::HeapOptions;
using gcheap::test::manual_gc;

namespace {

struct Holder {
    void* target;
};

bool is_live(Heap& heap, std::uintptr_t addr) {
    ObjectRef ref;
    return heap.find_object(addr, ref);
}

// That an object is freed is asserted except under AddressSanitizer, whose
// fake frames (detect_stack_use_after_return) hold copies of the allocation
// path's locals that a stale stack word keeps scanned: about one run in 25.
void expect_freed(Heap& heap, std::uintptr_t addr, const char* what) {
    INFO(what);
#ifdef GCHEAP_ASAN
    if (is_live(heap, addr)) WARN("ASan build: kept by a stale copy");
#else
    CHECK_FALSE(is_live(heap, addr));
#endif
}

void collect(Heap& heap) {
    gcheap::test::clear_stack();
    heap.collector().collect();
}

// Builds an object of `size` bytes and stores its address plus `offset` into
// `slot` (unaligned when `slot` is); returns the object's address with its
// bits inverted, which the collector never takes for a pointer to it.
[[gnu::noinline]] std::uintptr_t store_pointer(Heap& heap, std::size_t size, std::size_t offset, void* slot) {
    auto* object = static_cast<unsigned char*>(heap.alloc(size, false));
    // Byte by byte, with no local whose address is taken: under ASan such a
    // local lives in a fake frame, which a stale stack word can keep scanned.
    const auto value = reinterpret_cast<std::uintptr_t>(object + offset);
    for (std::size_t i = 0; i < sizeof value; ++i) static_cast<unsigned char*>(slot)[i] = (value >> (8 * i)) & 0xff;
    return ~reinterpret_cast<std::uintptr_t>(object);  // hidden from the scan
}

}  // namespace

// Addresses the tests below keep for checking, hidden from the scan (bits
// inverted) in volatile storage that the compiler cannot cache.
volatile std::uintptr_t g_hidden_holder;
volatile std::uintptr_t g_hidden_target;

template <class T>
T* unhide(volatile std::uintptr_t& bits) {
    return reinterpret_cast<T*>(~bits);
}

void churn_and_collect(int rounds) {
    for (int i = 0; i < rounds; ++i) {
        for (int j = 0; j < 20000; ++j) std::memset(gcheap::alloc(64), 0xee, 64);
        gcheap::collect();
    }
}

void make_uncollectable_holder() {
    auto* holder = static_cast<Holder*>(gcheap::alloc_uncollectable(sizeof(Holder)));
    auto* target = static_cast<std::uint64_t*>(gcheap::alloc(64));
    *target = 0x5eed;
    holder->target = target;
    g_hidden_holder = ~reinterpret_cast<std::uintptr_t>(holder);
    g_hidden_target = ~reinterpret_cast<std::uintptr_t>(target);
}

// Checks in frames of their own keep the addresses out of the test's frame,
// whose live slots a conservative scan would find.
bool holder_intact() {
    return unhide<Holder>(g_hidden_holder)->target == unhide<void>(g_hidden_target) &&
           *unhide<std::uint64_t>(g_hidden_target) == 0x5eed;
}

void free_holder() { gcheap::free_uncollectable(unhide<Holder>(g_hidden_holder)); }

TEST_CASE("roots: an uncollectable object and its referents stay until it is freed", "[roots][uncollectable]") {
    make_uncollectable_holder();
    churn_and_collect(3);
    // Both survived intact: a freed slot would have been reused by the churn.
    REQUIRE(holder_intact());
    // Once freed it is ordinary garbage: the next collection takes both.
    const std::uint64_t objects_before = gcheap::read_mem_stats().HeapObjects;
    free_holder();
    gcheap::collect();
    CHECK(gcheap::read_mem_stats().HeapObjects <= objects_before - 2);
}

TEST_CASE("roots: free_uncollectable reports pointers it did not hand out", "[roots][uncollectable][misuse]") {
    void* ordinary = gcheap::alloc(32);
    CHECK_THROWS_WITH(gcheap::free_uncollectable(ordinary), Catch::Contains("not an uncollectable object"));
    void* object = gcheap::alloc_uncollectable(32);
    CHECK_THROWS_AS(gcheap::free_uncollectable(static_cast<char*>(object) + 8), std::invalid_argument);
    gcheap::free_uncollectable(object);
    CHECK_THROWS_AS(gcheap::free_uncollectable(object), std::invalid_argument);
    gcheap::free_uncollectable(nullptr);  // does nothing
    void* a = gcheap::alloc_uncollectable(0);
    void* b = gcheap::alloc_uncollectable(0);
    CHECK(a != b);
    void* aligned = gcheap::alloc_uncollectable(100, 64);
    CHECK(reinterpret_cast<std::uintptr_t>(aligned) % 64 == 0);
    gcheap::free_uncollectable(a);
    gcheap::free_uncollectable(b);
    gcheap::free_uncollectable(aligned);
    gcheap::keep_alive(ordinary);
}

void fill_second_page(unsigned char* region, std::size_t page) {
    auto* kept = static_cast<std::uint64_t*>(gcheap::alloc(64));
    *kept = 42;
    std::memcpy(region + page, &kept, sizeof kept);
    g_hidden_target = ~reinterpret_cast<std::uintptr_t>(kept);
}

TEST_CASE("roots: a registered range unmapped without remove_roots is skipped without a crash", "[roots][misuse]") {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    auto* region = static_cast<unsigned char*>(
        mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    REQUIRE(region != MAP_FAILED);
    fill_second_page(region, page);
    gcheap::add_roots(region, region + 2 * page);
    REQUIRE(munmap(region, page) == 0);  // the first page only
    churn_and_collect(3);
    // The page still mapped was scanned: its object survived intact.
    CHECK(*unhide<std::uint64_t>(g_hidden_target) == 42);
    gcheap::remove_roots(region, region + 2 * page);
    munmap(region + page, page);
}

TEST_CASE("roots: conservative edge cases — unaligned and one-past-the-end pointers", "[roots][conservative]") {
    HeapOptions options = manual_gc();
    options.scan_globals = false;  // the slots below are the only roots
    // On the malloc heap: a Heap on the stack would be scanned as part of it.
    auto owned = std::make_unique<Heap>(options);
    Heap& heap = *owned;
    heap.register_current_thread();
    struct [[gnu::packed]] Packed {
        char tag;
        void* pointer;  // at offset 1: never seen by a word-aligned scan
    };
    alignas(8) static Packed packed[1];
    alignas(8) static void* aligned_slots[3];
    heap.collector().roots().add(packed, packed + 1);
    heap.collector().roots().add(aligned_slots, aligned_slots + 3);

    // volatile: the compiler must not keep the un-hidden addresses anywhere.
    static volatile std::uintptr_t unaligned_target, past_end_target, last_byte_target, interior_target;
    unaligned_target = store_pointer(heap, 48, 0, &packed[0].pointer);
    past_end_target = store_pointer(heap, 48, 48, &aligned_slots[0]);
    last_byte_target = store_pointer(heap, 48, 47, &aligned_slots[1]);
    interior_target = store_pointer(heap, 100000, 70000, &aligned_slots[2]);
    collect(heap);
    // An unaligned copy is not a pointer to the scan: the object is freed.
    expect_freed(heap, ~unaligned_target, "unaligned");
    // One past the end points at the next slot, not into the object.
    expect_freed(heap, ~past_end_target, "one past the end");
    // Any byte inside keeps the object, small or large.
    CHECK(is_live(heap, ~last_byte_target));
    CHECK(is_live(heap, ~interior_target));
    heap.collector().roots().remove(packed, packed + 1);
    heap.collector().roots().remove(aligned_slots, aligned_slots + 3);
}
