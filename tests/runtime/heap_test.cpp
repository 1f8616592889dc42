// Heap allocation API: sizes, zeroing, alignment, tiny packing, large objects,
// lookups and errors, each on a fresh Heap.
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace gcheap::detail;

namespace {

bool all_zero(const void* p, std::size_t n) {
    const auto* bytes = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) {
        if (bytes[i] != 0) return false;
    }
    return true;
}

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

}  // namespace

TEST_CASE("heap: every small size is zeroed, class-rounded and class-aligned", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    for (std::size_t size = 1; size <= kMaxSmallSize; size += (size < 1024 ? 1 : 61)) {
        for (bool noscan : {false, true}) {
            void* p = heap.alloc(size, noscan);
            REQUIRE(p != nullptr);
            REQUIRE(all_zero(p, size));
            std::memset(p, 0xFF, size);
            ObjectRef ref;
            REQUIRE(heap.find_object(addr(p), ref));
            if (noscan && size < kTinySize) continue;  // tiny objects live inside a block
            CHECK(ref.base == addr(p));
            const std::size_t cls = size_to_class(size);
            CHECK(ref.span->elem_size == kClassSize[cls]);
            CHECK(ref.span->noscan == noscan);
            const std::size_t align = kClassSize[cls] & (~kClassSize[cls] + 1);
            CHECK(addr(p) % std::min<std::size_t>(align, kPageSize) == 0);
        }
    }
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("heap: distinct objects never overlap", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    std::set<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
    for (int i = 0; i < 20000; ++i) {
        const std::size_t size = 1 + (static_cast<std::size_t>(i) * 7919) % 3000;
        auto* p = static_cast<unsigned char*>(heap.alloc(size, i % 3 == 0));
        ranges.emplace(addr(p), addr(p) + size);
    }
    std::uintptr_t previous_end = 0;
    for (const auto& [begin, end] : ranges) {
        REQUIRE(begin >= previous_end);
        previous_end = end;
    }
}

TEST_CASE("heap: size 0 returns one shared non-null address outside the heap", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    void* a = heap.alloc(0, false);
    void* b = heap.alloc(0, true);
    CHECK(a != nullptr);
    CHECK(a == b);
    ObjectRef ref;
    CHECK_FALSE(heap.find_object(addr(a), ref));
    CHECK(heap.read_mem_stats().Mallocs == 0);
}

TEST_CASE("heap: large objects get whole pages of their own", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    const std::size_t sizes[] = {kMaxSmallSize + 1, 40 * 1024, 1 << 20, (8 << 20) + 3};
    for (std::size_t size : sizes) {
        CAPTURE(size);
        void* p = heap.alloc(size, false);
        CHECK(addr(p) % kPageSize == 0);
        CHECK(all_zero(p, size));
        ObjectRef ref;
        REQUIRE(heap.find_object(addr(p) + size - 1, ref));  // interior pointer at the very end
        CHECK(ref.base == addr(p));
        CHECK(ref.span->is_large());
        CHECK(ref.span->npages == (size + kPageSize - 1) / kPageSize);
        const std::uintptr_t past_end = addr(p) + ref.span->npages * kPageSize;
        CHECK_FALSE((heap.find_object(past_end, ref) && ref.base == addr(p)));
    }
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("heap: lookups ignore addresses outside the heap and free slots", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    int on_stack = 0;
    ObjectRef ref;
    CHECK_FALSE(heap.find_object(0, ref));
    CHECK_FALSE(heap.find_object(addr(&on_stack), ref));
    CHECK_FALSE(heap.find_object(~std::uintptr_t{0}, ref));
    CHECK_FALSE(heap.find_object(std::uintptr_t{1} << 47, ref));
    void* p = heap.alloc(64, false);
    REQUIRE(heap.find_object(addr(p) + 63, ref));
    CHECK(ref.base == addr(p));
    // The slot after p is free: no object there yet.
    CHECK_FALSE(heap.find_object(addr(p) + 64, ref));
    // A span's tail (class 5: 170 objects of 48 bytes, 32 bytes of tail) holds no object.
    void* q = heap.alloc(48, false);
    REQUIRE(heap.find_object(addr(q), ref));
    CHECK_FALSE(heap.find_object(ref.span->end() - 1, ref));
}

TEST_CASE("heap: the tiny allocator packs pointer-free objects into 16-byte blocks", "[heap][tiny]") {
    Heap heap(gcheap::test::no_gc());
    SECTION("16 one-byte objects share blocks (Go's TestTinyAlloc)") {
        std::set<std::uintptr_t> blocks;
        for (int i = 0; i < 16; ++i) blocks.insert(addr(heap.alloc(1, true)) & ~std::uintptr_t{15});
        CHECK(blocks.size() == 1);
    }
    SECTION("each tiny object is aligned to the largest of 8, 4, 2 dividing its size") {
        // A C++ type's size is a multiple of its alignment, so this suffices
        // for any type under 16 bytes (Go aligns 12-byte objects to 8 only on
        // 32-bit platforms, for 64-bit atomics).
        void* one = heap.alloc(1, true);
        void* eight = heap.alloc(8, true);
        CHECK(addr(eight) % 8 == 0);
        CHECK((addr(eight) & ~std::uintptr_t{15}) == (addr(one) & ~std::uintptr_t{15}));
        Heap other(gcheap::test::no_gc());
        other.alloc(1, true);
        CHECK(addr(other.alloc(6, true)) % 2 == 0);
        other.alloc(1, true);
        CHECK(addr(other.alloc(12, true)) % 4 == 0);
    }
    SECTION("two 8-byte objects per block, counted as Go counts them") {
        const gcheap::MemStats before = heap.read_mem_stats();
        std::set<std::uintptr_t> blocks;
        for (int i = 0; i < 1000; ++i) {
            auto* p = static_cast<std::uint64_t*>(heap.alloc(8, true));
            CHECK(*p == 0);
            *p = ~std::uint64_t{0};
            blocks.insert(addr(p) & ~std::uintptr_t{15});
        }
        CHECK(blocks.size() == 500);
        const gcheap::MemStats after = heap.read_mem_stats();
        CHECK(after.Mallocs - before.Mallocs == 1000);            // every tiny object
        CHECK(after.HeapObjects - before.HeapObjects == 500);     // tiny ones cancel: blocks remain
        CHECK(after.HeapAlloc - before.HeapAlloc == 500 * 16);
        CHECK(after.BySize[kTinySizeClass].Mallocs - before.BySize[kTinySizeClass].Mallocs == 500);
    }
    SECTION("scanned small objects are never packed") {
        void* a = heap.alloc(8, false);
        void* b = heap.alloc(8, false);
        ObjectRef ra, rb;
        REQUIRE(heap.find_object(addr(a), ra));
        REQUIRE(heap.find_object(addr(b), rb));
        CHECK(ra.base == addr(a));
        CHECK(rb.base == addr(b));
        CHECK(ra.span->elem_size == 8);
    }
}

TEST_CASE("heap: alloc_aligned honours alignments up to a page", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    for (std::size_t alignment = 1; alignment <= kPageSize; alignment <<= 1) {
        for (std::size_t size : {1, 24, 48, 100, 1000, 5000, 40000}) {
            void* p = heap.alloc_aligned(size, alignment, false);
            CAPTURE(alignment, size);
            CHECK(addr(p) % alignment == 0);
            CHECK(all_zero(p, size));
        }
    }
    CHECK_THROWS_AS(heap.alloc_aligned(16, 3, false), std::invalid_argument);
    CHECK_THROWS_AS(heap.alloc_aligned(16, 2 * kPageSize, false), std::bad_alloc);
}

TEST_CASE("heap: an impossible size throws bad_alloc and the heap stays usable", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    void* keep = heap.alloc(100, false);
    std::memset(keep, 0x5A, 100);
    CHECK_THROWS_AS(heap.alloc(std::size_t{1} << 62, false), std::bad_alloc);
    CHECK_THROWS_AS(heap.alloc(~std::size_t{0}, true), std::bad_alloc);
    CHECK_THROWS_AS(heap.alloc(kMaxAllocSize + 1, false), std::bad_alloc);
    CHECK(static_cast<unsigned char*>(keep)[99] == 0x5A);
    CHECK(heap.alloc(100, false) != nullptr);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("heap: an OS refusal throws bad_alloc and loses nothing", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    std::vector<std::uint64_t*> objects;
    for (int i = 0; i < 1000; ++i) {
        auto* p = static_cast<std::uint64_t*>(heap.alloc(64, false));
        *p = static_cast<std::uint64_t>(i);
        objects.push_back(p);
    }
    const gcheap::MemStats before = heap.read_mem_stats();
    heap.os_memory().fail_after_for_testing(OsCall::kReserve, 1);
    CHECK_THROWS_AS(heap.alloc(std::size_t{256} << 20, false), std::bad_alloc);  // needs new address space
    const gcheap::MemStats after = heap.read_mem_stats();
    CHECK(after.HeapAlloc == before.HeapAlloc);
    CHECK(after.Mallocs == before.Mallocs);
    for (int i = 0; i < 1000; ++i) REQUIRE(*objects[static_cast<std::size_t>(i)] == static_cast<std::uint64_t>(i));
    CHECK(heap.alloc(std::size_t{256} << 20, false) != nullptr);  // the fault has cleared
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("heap: a thread's spans return to the central lists when it exits", "[heap][threads]") {
    Heap heap(gcheap::test::no_gc());
    std::uintptr_t first_object = 0;
    std::thread([&] { first_object = addr(heap.alloc(32, false)); }).join();
    // The span the thread used, with 255 free slots, is now on its central
    // partial list: this thread's first 32-byte object comes from it.
    void* p = heap.alloc(32, false);
    ObjectRef ref;
    REQUIRE(heap.find_object(first_object, ref));
    CHECK(addr(p) >= ref.span->base);
    CHECK(addr(p) < ref.span->end());
    CHECK(heap.verify() == nullptr);
    const gcheap::MemStats s = heap.read_mem_stats();
    CHECK(s.Mallocs == 2);
    CHECK(s.HeapAlloc == 64);
}

TEST_CASE("heap: one thread can use several heaps and each keeps its own cache", "[heap][threads]") {
    Heap a(gcheap::test::no_gc());
    Heap b(gcheap::test::no_gc());
    for (int i = 0; i < 1000; ++i) {
        void* pa = a.alloc(16, false);
        void* pb = b.alloc(16, false);
        ObjectRef ref;
        REQUIRE(a.find_object(addr(pa), ref));
        REQUIRE_FALSE(a.find_object(addr(pb), ref));
        REQUIRE(b.find_object(addr(pb), ref));
    }
    CHECK(a.read_mem_stats().Mallocs == 1000);
    CHECK(b.read_mem_stats().Mallocs == 1000);
    CHECK(a.verify() == nullptr);
    CHECK(b.verify() == nullptr);
}

TEST_CASE("heap: a heap destroyed before its threads exit is forgotten safely", "[heap][threads]") {
    auto heap = std::make_unique<Heap>(gcheap::test::no_gc());
    std::mutex mu;
    std::condition_variable cv;
    bool allocated = false;
    bool heap_gone = false;
    std::thread worker([&] {
        heap->alloc(64, false);
        std::unique_lock<std::mutex> lock(mu);
        allocated = true;
        cv.notify_all();
        cv.wait(lock, [&] { return heap_gone; });
        // Exiting now must not touch the destroyed heap.
    });
    {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return allocated; });
    }
    heap.reset();
    {
        std::lock_guard<std::mutex> lock(mu);
        heap_gone = true;
    }
    cv.notify_all();
    worker.join();
    Heap fresh(gcheap::test::no_gc());  // may reuse the address; must not inherit stale caches
    CHECK(fresh.alloc(64, false) != nullptr);
    CHECK(fresh.read_mem_stats().Mallocs == 1);
}

TEST_CASE("public API: alloc, alloc_noscan and make use the default heap", "[heap][api]") {
    struct alignas(64) Wide {
        int x;
        double y;
    };
    auto* w = gcheap::make<Wide>(Wide{7, 2.5});
    CHECK(addr(w) % 64 == 0);
    CHECK(w->x == 7);
    CHECK(w->y == 2.5);
    auto* n = gcheap::make<long>(42L);
    CHECK(*n == 42);
    void* p = gcheap::alloc(1000);
    void* q = gcheap::alloc_noscan(1000);
    CHECK(p != q);
    ObjectRef ref;
    REQUIRE(default_heap().find_object(addr(q), ref));
    CHECK(ref.span->noscan);
    REQUIRE(default_heap().find_object(addr(p), ref));
    CHECK_FALSE(ref.span->noscan);
    CHECK(gcheap::alloc(0) == gcheap::alloc_noscan(0));
    CHECK_THROWS_AS(gcheap::alloc(~std::size_t{0}), std::bad_alloc);
}

TEST_CASE("heap: page states follow allocation and release", "[heap]") {
    Heap heap(gcheap::test::no_gc());
    int local = 0;
    CHECK(heap.page_state(addr(&local)) == PageState::kOutside);
    void* p = heap.alloc(100, false);
    CHECK(heap.page_state(addr(p)) == PageState::kInUse);
    // The rest of the first 4 MiB was committed but never touched: released.
    CHECK(heap.page_state(addr(p) + 64 * kPageSize) == PageState::kReleased);
}
