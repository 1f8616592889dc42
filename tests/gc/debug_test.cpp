// GCHEAP_DEBUG modes (issue: "Trust"): each mode does its job on a healthy
// heap, and each check catches a planted bug. Checks that abort run in a
// child process (tests/support/child_process.hpp).
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "runtime/sanitizers.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace gcheap::detail;
using gcheap::DebugOptions;
using gcheap::test::ChildResult;
using gcheap::test::manual_gc;
using gcheap::test::run_child_test;

namespace {

gcheap::HeapOptions with_debug(const char* spec, unsigned mark_threads = 2) {
    gcheap::HeapOptions options = manual_gc(mark_threads);
    options.debug = DebugOptions::parse(spec);
    return options;
}

void collect(Heap& heap) {
    gcheap::test::clear_stack();
    heap.collector().collect();
}

// Addresses kept where the collector does not look (malloc'd memory), so
// that only the conservative stack can keep the objects alive.
[[gnu::noinline]] std::vector<std::uintptr_t> allocate_hidden(Heap& heap, int count, std::size_t size, bool noscan) {
    std::vector<std::uintptr_t> addresses;
    for (int i = 0; i < count; ++i) {
        auto* p = static_cast<unsigned char*>(heap.alloc(size, noscan));
        std::memset(p, 0x5a, size);
        addresses.push_back(reinterpret_cast<std::uintptr_t>(p));
    }
    return addresses;
}

bool all_words_are(std::uintptr_t base, std::size_t bytes, std::uint64_t pattern) {
    for (std::size_t i = 0; i < bytes / 8; ++i) {
        if (reinterpret_cast<const std::uint64_t*>(base)[i] != pattern) return false;
    }
    return true;
}

struct Pair {
    Pair* next;
    std::uint64_t payload;
};

}  // namespace

TEST_CASE("debug: GCHEAP_DEBUG specs parse, print back, and reject unknown modes", "[debug]") {
    const DebugOptions all = DebugOptions::parse("checkmark,clobberfree,verify,torture=250");
    CHECK(all.checkmark);
    CHECK(all.clobberfree);
    CHECK(all.verify);
    CHECK(all.torture == 250);
    CHECK(all.to_string() == "checkmark,clobberfree,verify,torture=250");
    CHECK(DebugOptions::parse(all.to_string()).to_string() == all.to_string());
    CHECK_FALSE(DebugOptions::parse("").any());
    CHECK_FALSE(DebugOptions::parse("off").any());
    CHECK(DebugOptions::parse("verify=1,checkmark=0").to_string() == "verify");
    CHECK_THROWS_WITH(DebugOptions::parse("checkmark,clobber"), Catch::Contains("unknown debug mode 'clobber'"));
    CHECK_THROWS_AS(DebugOptions::parse("torture"), std::invalid_argument);
    CHECK_THROWS_AS(DebugOptions::parse("torture=-3"), std::invalid_argument);
    CHECK_THROWS_AS(DebugOptions::parse("verify=yes"), std::invalid_argument);

    const DebugOptions merged = DebugOptions::parse("checkmark,torture=50").merged_with(DebugOptions::parse("torture=20"));
    CHECK(merged.to_string() == "checkmark,torture=20");
}

TEST_CASE("debug: set_debug_modes changes the default heap's modes and returns the previous ones", "[debug]") {
    const std::string initial = gcheap::set_debug_modes("verify,clobberfree");
    CHECK(gcheap::set_debug_modes("checkmark") == "clobberfree,verify");
    CHECK_THROWS_AS(gcheap::set_debug_modes("checkmark,bogus"), std::invalid_argument);
    CHECK(gcheap::set_debug_modes(initial) == "checkmark");  // the failed call changed nothing
}

TEST_CASE("debug: clobberfree fills freed objects with 0xdeadbeef and allocation zeroes them again", "[debug]") {
    struct Case {
        std::size_t size;
        bool noscan;
    };
    const Case cases[] = {{48, false}, {1024, true}, {100000, false}};
    for (const Case& c : cases) {
        Heap heap(with_debug("clobberfree"));
        heap.alloc(16, false);
        const std::vector<std::uintptr_t> addresses = allocate_hidden(heap, c.size > 32768 ? 32 : 2000, c.size, c.noscan);
        collect(heap);
        std::size_t freed = 0;
        for (const std::uintptr_t a : addresses) {
            ObjectRef ref;
            if (heap.find_object(a, ref)) continue;  // kept by a stale stack word
            ++freed;
            INFO("size " << c.size << " object " << a);
            CHECK(all_words_are(a, c.size, kClobberPattern));
        }
        CHECK(freed * 10 >= addresses.size() * 8);  // stale stack words (more under ASan) pin a few
        // Reuse hands out zeroed memory, not the pattern.
        for (int i = 0; i < 3000; ++i) {
            const auto p = reinterpret_cast<std::uintptr_t>(heap.alloc(c.size, c.noscan));
            if (!all_words_are(p, c.size, 0)) FAIL("reused object not zeroed, size " << c.size);
            if (c.size > 32768 && i == 32) break;
        }
        CHECK(heap.verify() == nullptr);
    }
}

TEST_CASE("debug: without clobberfree, freed objects keep their bytes", "[debug]") {
    Heap heap(manual_gc());
    heap.alloc(16, false);
    const std::vector<std::uintptr_t> addresses = allocate_hidden(heap, 2000, 48, false);
    collect(heap);
    std::size_t clobbered = 0;
    for (const std::uintptr_t a : addresses) clobbered += all_words_are(a, 48, kClobberPattern) ? 1 : 0;
    CHECK(clobbered == 0);
}

TEST_CASE("debug: torture=N collects once every N allocations, across threads", "[debug]") {
    Heap heap(with_debug("torture=100"));
    for (int i = 0; i < 1000; ++i) heap.alloc(32, false);
    CHECK(heap.read_mem_stats().NumGC == 10);

    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&heap] {
            for (int i = 0; i < 250; ++i) heap.alloc(i % 2 == 0 ? 24 : 40000, i % 3 == 0);
            heap.unregister_current_thread();
        });
    }
    // Under ThreadSanitizer a thread blocked in join() cannot be stopped
    // (docs/design.md): unregistered, this one need not be.
    heap.unregister_current_thread();
    for (std::thread& t : threads) t.join();
    CHECK(heap.read_mem_stats().NumGC == 20);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("debug: torture switched on and off at run time reaches threads already allocating", "[debug]") {
    Heap heap(manual_gc());
    for (int i = 0; i < 100; ++i) heap.alloc(32, false);  // the fast path is bound to this thread
    heap.set_debug(DebugOptions::parse("torture=10"));
    for (int i = 0; i < 100; ++i) heap.alloc(32, false);
    CHECK(heap.read_mem_stats().NumGC == 10);
    heap.set_debug(DebugOptions{});
    for (int i = 0; i < 100; ++i) heap.alloc(32, false);
    CHECK(heap.read_mem_stats().NumGC == 10);
}

TEST_CASE("debug: checkmark and verify pass on a healthy heap with several threads", "[debug]") {
    Heap heap(with_debug("checkmark,verify,clobberfree"));
    static Pair* keep_root[1];  // a root: this thread unregisters before it joins
    heap.collector().roots().add(keep_root, keep_root + 1);
    Pair* keep = nullptr;
    for (int i = 0; i < 20000; ++i) {
        auto* p = static_cast<Pair*>(heap.alloc(sizeof(Pair), false));
        p->payload = static_cast<std::uint64_t>(i);
        if (i % 3 == 0) {
            p->next = keep;
            keep = p;
        }
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&heap, t] {
            Pair* mine = nullptr;
            for (int i = 0; i < 5000; ++i) {
                auto* p = static_cast<Pair*>(heap.alloc(i % 50 == 0 ? 50000 : sizeof(Pair), false));
                p->next = i % 2 == 0 ? mine : nullptr;
                p->payload = static_cast<std::uint64_t>(t);
                mine = p;
                if (i % 1000 == t) heap.collector().collect();
            }
            gcheap::keep_alive(mine);
            heap.unregister_current_thread();
        });
    }
    keep_root[0] = keep;
    for (int i = 0; i < 5; ++i) collect(heap);
    heap.unregister_current_thread();  // see the torture test
    for (std::thread& t : threads) t.join();
    collect(heap);
    int count = 0;
    for (Pair* p = keep; p != nullptr; p = p->next, ++count) REQUIRE(p->payload == static_cast<std::uint64_t>(19998 - 3 * count));
    CHECK(count == 6667);
    CHECK(heap.verify() == nullptr);
}

// --- planted bugs, run in a child process -------------------------------------

namespace {

struct Planted {
    std::uintptr_t victim = 0;
};

void clear_mark_bit(Heap& heap, void* arg) {
    ObjectRef ref;
    if (!heap.find_object(static_cast<Planted*>(arg)->victim, ref)) return;
    ref.span->mark_bits()[ref.index / 64] &= ~(std::uint64_t{1} << (ref.index % 64));
}

}  // namespace

namespace {

Pair* g_root[1];

// The victim is reachable only through the parent, which only the root holds.
[[gnu::noinline]] std::uintptr_t build_parent_and_victim(Heap& heap) {
    auto* a = static_cast<Pair*>(heap.alloc(sizeof(Pair), false));
    auto* b = static_cast<Pair*>(heap.alloc(sizeof(Pair), false));
    a->next = b;
    g_root[0] = a;
    std::printf("parent %#lx victim %#lx\n", static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(a)),
                static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(b)));
    std::fflush(stdout);
    return reinterpret_cast<std::uintptr_t>(b) + 1;
}

}  // namespace

TEST_CASE("debug child: checkmark with a lost mark", "[.child]") {
    GCHEAP_CHILD_ONLY();
    gcheap::HeapOptions options = with_debug("checkmark");
    options.scan_globals = false;  // static data is no root here: only the stacks and g_root are
    Heap heap(options);
    heap.collector().roots().add(g_root, g_root + 1);
    static Planted planted;
    planted.victim = build_parent_and_victim(heap);  // + 1: an interior address is enough to find it
    collect(heap);  // healthy: no report
    std::printf("first cycle passed\n");
    std::fflush(stdout);
    heap.collector().set_after_mark_hook_for_testing(clear_mark_bit, &planted);
    collect(heap);
    std::printf("checkmark did not notice\n");
}

TEST_CASE("debug: checkmark reports an unmarked reachable object and what references it", "[debug]") {
    const ChildResult r = run_child_test("debug child: checkmark with a lost mark");
    INFO(r.output);
    CHECK(r.signal == SIGABRT);
    CHECK_THAT(r.output, Catch::Contains("first cycle passed"));
    CHECK_THAT(r.output, !Catch::Contains("did not notice"));
    // The report names the victim, and the word of the parent that points at it.
    const std::size_t p = r.output.find("parent ");
    REQUIRE(p != std::string::npos);
    unsigned long parent = 0;
    unsigned long victim = 0;
    REQUIRE(std::sscanf(r.output.c_str() + p, "parent %lx victim %lx", &parent, &victim) == 2);
    CHECK_THAT(r.output, Catch::Contains(fmt::format("checkmark: object {:#x} is reachable but the collector did not mark it", victim)));
    // The referrer: the parent's first word. Under sanitizers a stale stack
    // word (ASan's fake frames keep more of them) may reach the victim first.
    const bool via_parent = r.output.find(fmt::format("offset 0 of object {:#x}", parent)) != std::string::npos;
    const bool via_stack = r.output.find("on a thread's stack or registers") != std::string::npos;
    if (kSanitizedAddressSpace) CHECK((via_parent || via_stack));
    else CHECK(via_parent);
    CHECK_THAT(r.output, Catch::Contains("size class 2, 16 bytes, scan span"));
}

TEST_CASE("debug child: verify with a corrupted span count", "[.child]") {
    GCHEAP_CHILD_ONLY();
    Heap heap(with_debug("verify"));
    static Pair* root[1];
    heap.collector().roots().add(root, root + 1);
    root[0] = static_cast<Pair*>(heap.alloc(sizeof(Pair), false));
    collect(heap);
    std::printf("first cycle passed\n");
    std::fflush(stdout);
    ObjectRef ref;
    if (!heap.find_object(reinterpret_cast<std::uintptr_t>(root[0]), ref)) return;
    ref.span->alloc_count.fetch_add(1);  // one object more than the bitmap holds
    collect(heap);
    std::printf("verify did not notice\n");
}

TEST_CASE("debug: verify reports a span whose count disagrees with its bitmap", "[debug]") {
    const ChildResult r = run_child_test("debug child: verify with a corrupted span count");
    INFO(r.output);
    CHECK(r.signal == SIGABRT);
    CHECK_THAT(r.output, Catch::Contains("first cycle passed"));
    CHECK_THAT(r.output, Catch::Contains("gcheap: verify: "));
    CHECK_THAT(r.output, !Catch::Contains("did not notice"));
}

TEST_CASE("debug: GCHEAP_DEBUG reaches heaps built with explicit options", "[debug]") {
    const ChildResult r = run_child_test("debug child: report the modes", {"GCHEAP_DEBUG=verify,torture=7"});
    INFO(r.output);
    CHECK(r.exited);
    CHECK_THAT(r.output, Catch::Contains("modes: verify,torture=7"));
    const ChildResult bad = run_child_test("debug child: report the modes", {"GCHEAP_DEBUG=verify,nonsense"});
    INFO(bad.output);
    CHECK_THAT(bad.output, Catch::Contains("ignoring GCHEAP_DEBUG=verify,nonsense"));
    CHECK_THAT(bad.output, Catch::Contains("modes: \n"));
}

TEST_CASE("debug child: report the modes", "[.child]") {
    GCHEAP_CHILD_ONLY();
    Heap heap(manual_gc());
    std::printf("modes: %s\n", heap.debug().get().to_string().c_str());
}

namespace {

// The planted user bug: until the next allocation, the only references to
// some objects are disguised (XOR-ed), as a program that packs tag bits into
// pointers might keep them. A conservative stack word may still pin one or
// two, so the test looks at a hundred.
[[gnu::noinline]] std::vector<std::uintptr_t> hide_objects_across_an_allocation(Heap& heap) {
    std::vector<std::uintptr_t> hidden;
    for (int i = 0; i < 100; ++i) {
        auto* object = static_cast<std::uint64_t*>(heap.alloc(64, false));
        object[0] = 1234;
        hidden.push_back(reinterpret_cast<std::uintptr_t>(object) ^ 0xff);
    }
    gcheap::test::clear_stack();
    heap.alloc(64, false);  // the 102nd allocation: with torture=102, a full collection runs first
    for (std::uintptr_t& h : hidden) h ^= 0xff;
    return hidden;
}

std::size_t count_clobbered(const std::vector<std::uintptr_t>& objects) {
    std::size_t clobbered = 0;
    for (const std::uintptr_t a : objects) clobbered += reinterpret_cast<const std::uint64_t*>(a)[0] == kClobberPattern;
    return clobbered;
}

}  // namespace

TEST_CASE("debug: torture with clobberfree exposes pointers hidden across one allocation", "[debug]") {
    {
        Heap heap(manual_gc());  // no collection at that moment: the bug goes unseen
        heap.alloc(8, false);
        CHECK(count_clobbered(hide_objects_across_an_allocation(heap)) == 0);
    }
    // Every 102nd allocation collects: exactly the one after the hiding (an
    // earlier collection would free and reuse the hidden slots in the loop).
    Heap heap(with_debug("torture=102,clobberfree"));
    heap.alloc(8, false);
    CHECK(count_clobbered(hide_objects_across_an_allocation(heap)) >= 90);  // freed, and it shows
}
