// The API-misuse matrix (issue: "Trust"; docs/debugging.md, "Misuse and what
// happens"): every misuse a user can make of the public API has one
// documented, tested outcome. Each TEST_CASE runs in its own process, so the
// default heap is fresh in each.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace {

bool is_allocated(const void* p) {
    gcheap::detail::ObjectRef ref;
    return gcheap::detail::default_heap().find_object(reinterpret_cast<std::uintptr_t>(p), ref);
}

std::uint64_t num_gc() { return gcheap::read_mem_stats().NumGC; }

}  // namespace

TEST_CASE("misuse: removing a root range that was never added throws invalid_argument", "[misuse]") {
    static void* slots[4];
    CHECK_THROWS_WITH(gcheap::remove_roots(slots, slots + 4), Catch::Contains("never added"));
    gcheap::add_roots(slots, slots + 4);
    CHECK_THROWS_AS(gcheap::remove_roots(slots, slots + 3), std::invalid_argument);  // bounds must match exactly
    CHECK_THROWS_AS(gcheap::add_roots(slots + 4, slots), std::invalid_argument);      // begin > end
    gcheap::remove_roots(slots, slots + 4);
}

namespace {
void* g_outer[8];
[[gnu::noinline]] void store_in_inner_part() { g_outer[5] = gcheap::alloc(256); }
}  // namespace

TEST_CASE("misuse: overlapping and nested root ranges are each scanned until removed", "[misuse]") {
    gcheap::add_roots(g_outer, g_outer + 8);
    gcheap::add_roots(g_outer + 4, g_outer + 6);  // nested inside the first
    store_in_inner_part();
    const void* object = g_outer[5];
    gcheap::remove_roots(g_outer, g_outer + 8);  // the nested registration still covers g_outer[5]
    gcheap::test::clear_stack();
    gcheap::collect();
    CHECK(is_allocated(object));
    gcheap::remove_roots(g_outer + 4, g_outer + 6);
}

TEST_CASE("misuse: a finalizer on a non-heap, interior, freed or already finalized pointer throws", "[misuse]") {
    auto finalizer = [](void*) {};
    int on_stack = 0;
    std::unique_ptr<int> on_malloc_heap(new int(0));
    CHECK_THROWS_WITH(gcheap::set_finalizer(&on_stack, finalizer), Catch::Contains("is not an allocated gcheap object"));
    CHECK_THROWS_AS(gcheap::set_finalizer(on_malloc_heap.get(), finalizer), std::invalid_argument);
    CHECK_THROWS_AS(gcheap::set_finalizer(nullptr, finalizer), std::invalid_argument);

    auto* object = static_cast<char*>(gcheap::alloc(64));
    CHECK_THROWS_WITH(gcheap::set_finalizer(object + 8, finalizer), Catch::Contains("points inside the object"));
    gcheap::set_finalizer(object, finalizer);
    CHECK_THROWS_WITH(gcheap::set_finalizer(object, finalizer), Catch::Contains("finalizer already set"));
    gcheap::set_finalizer(object, nullptr);  // clearing, then setting again, is fine
    gcheap::set_finalizer(object, finalizer);
    gcheap::set_finalizer(object, nullptr);
    gcheap::keep_alive(object);
}

TEST_CASE("misuse: unregistering a thread twice or before registering throws logic_error", "[misuse]") {
    std::thread([] {
        CHECK_THROWS_AS(gcheap::unregister_current_thread(), std::logic_error);
        gcheap::register_current_thread();
        gcheap::register_current_thread();  // idempotent: one unregister undoes both
        gcheap::unregister_current_thread();
        CHECK_THROWS_WITH(gcheap::unregister_current_thread(), Catch::Contains("not registered"));
    }).join();
}

TEST_CASE("misuse: nested ThreadScopes leave the registration as they found it", "[misuse]") {
    std::thread([] {
        auto& heap = gcheap::detail::default_heap();
        {
            gcheap::ThreadScope outer;
            CHECK(heap.is_current_thread_registered());
            {
                gcheap::ThreadScope inner;
            }
            CHECK(heap.is_current_thread_registered());  // the inner scope did not unregister
        }
        CHECK_FALSE(heap.is_current_thread_registered());
        gcheap::register_current_thread();
        { gcheap::ThreadScope scope; }
        CHECK(heap.is_current_thread_registered());  // registered before the scope: still registered
        {
            gcheap::ThreadScope scope;
            gcheap::unregister_current_thread();  // unregistered inside: the scope's end does not throw
        }
        CHECK_FALSE(heap.is_current_thread_registered());
    }).join();
}

namespace {
std::atomic<void*> g_local_object{nullptr};
[[gnu::noinline]] void hold_in_local_then_collect(std::atomic<bool>& collected) {
    void* local = gcheap::alloc(128);  // auto-registers this thread
    static_cast<std::uint64_t*>(local)[0] = 42;
    g_local_object.store(reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(local) ^ 1));  // disguised
    while (!collected.load()) gcheap::detail::poll_world_stop();  // TSan: a spinning thread must offer to stop
    CHECK(static_cast<std::uint64_t*>(local)[0] == 42);
    CHECK(is_allocated(local));
    gcheap::keep_alive(local);
}
}  // namespace

TEST_CASE("misuse: a thread that allocates without registering is registered automatically", "[misuse]") {
    std::atomic<bool> collected{false};
    std::thread t([&] { hold_in_local_then_collect(collected); });
    while (g_local_object.load() == nullptr) gcheap::detail::poll_world_stop();
    gcheap::collect();  // the other thread's stack is scanned: its local keeps the object
    collected.store(true);
    t.join();
}

namespace {
std::atomic<int> g_finalizer_collections{0};
void collect_from_finalizer(void*) {
    gcheap::collect();
    gcheap::free_os_memory();
    g_finalizer_collections.fetch_add(1);
}
void rearm_finalizer(void* object);
std::atomic<int> g_rearmed{0};
void rearm_finalizer(void* object) {
    if (g_rearmed.fetch_add(1) == 0) gcheap::set_finalizer(object, rearm_finalizer);  // Go allows re-arming
}
[[gnu::noinline]] void make_finalizable(void (*fn)(void*)) { gcheap::set_finalizer(gcheap::alloc(32), fn); }
}  // namespace

TEST_CASE("misuse: collect() and free_os_memory() from a finalizer run a full cycle", "[misuse]") {
    for (int i = 0; i < 4; ++i) make_finalizable(collect_from_finalizer);
    gcheap::test::clear_stack();
    const std::uint64_t before = num_gc();
    gcheap::collect();
    gcheap::detail::default_heap().collector().finalizers().wait_idle();
    CHECK(g_finalizer_collections.load() >= 3);  // a stale stack word may keep one alive
    CHECK(num_gc() >= before + 1 + 2 * static_cast<std::uint64_t>(g_finalizer_collections.load()));
}

TEST_CASE("misuse: a finalizer may set a finalizer on its object again", "[misuse]") {
    make_finalizable(rearm_finalizer);
    auto& finalizers = gcheap::detail::default_heap().collector().finalizers();
    for (int i = 0; i < 4 && g_rearmed.load() < 2; ++i) {
        gcheap::test::clear_stack();
        gcheap::collect();
        finalizers.wait_idle();
    }
    CHECK(g_rearmed.load() == 2);
}

TEST_CASE("misuse: bad sizes and alignments throw and the heap stays usable", "[misuse]") {
    CHECK_THROWS_AS(gcheap::alloc(~std::size_t{0}), std::bad_alloc);
    CHECK_THROWS_AS(gcheap::alloc_noscan(std::size_t{1} << 60), std::bad_alloc);
    CHECK_THROWS_AS(gcheap::alloc_aligned(64, 48), std::invalid_argument);
    CHECK_THROWS_AS(gcheap::alloc_aligned(64, 0), std::invalid_argument);
    CHECK_THROWS_AS(gcheap::alloc_aligned(64, 1 << 20), std::bad_alloc);  // beyond a page: documented limit
    CHECK(gcheap::alloc(0) == gcheap::alloc(0));                           // zero size: one shared address
    CHECK(gcheap::alloc(100) != nullptr);
    CHECK(gcheap::test::check_identities(gcheap::read_mem_stats()) == "");
}

namespace {
[[gnu::noinline]] std::uintptr_t* store_only_in_malloc_memory() {
    auto* hidden = static_cast<std::uintptr_t*>(std::malloc(sizeof(std::uintptr_t)));
    auto* object = static_cast<std::uint64_t*>(gcheap::alloc(64));
    object[0] = 7;
    *hidden = reinterpret_cast<std::uintptr_t>(object);
    return hidden;
}
}  // namespace

TEST_CASE("misuse: a pointer kept only in malloc'd memory does not keep its object alive", "[misuse]") {
    gcheap::set_debug_modes("clobberfree");
    std::uintptr_t* hidden = store_only_in_malloc_memory();
    gcheap::test::clear_stack();
    gcheap::collect();
    // The documented outcome: freed, and with clobberfree the stale pointer reads the pattern.
    if (!is_allocated(reinterpret_cast<void*>(*hidden))) {
        CHECK(reinterpret_cast<const std::uint64_t*>(*hidden)[0] == gcheap::detail::kClobberPattern);
    } else {
        WARN("a stale stack word kept the object alive this time");
    }
    std::free(hidden);
}

TEST_CASE("misuse: GC knobs take out-of-range values as documented", "[misuse]") {
    const int previous = gcheap::set_gc_percent(-5);  // any negative value: off
    CHECK(previous == 100);
    CHECK(gcheap::set_gc_percent(previous) == -5);
    const std::int64_t limit = gcheap::set_memory_limit(-1);  // negative: query only
    CHECK(gcheap::set_memory_limit(-1) == limit);
    CHECK_THROWS_AS(gcheap::set_debug_modes("verify,everything"), std::invalid_argument);
}
