// Globals, statics and thread_locals are roots (HeapOptions::scan_globals,
// gc/data_segments.hpp), as an application writes them: each kind holds a
// gcheap object with a check value through collections that would reuse the
// slot of a lost object, in the main thread and in other threads.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Payload {
    std::uint64_t check;
    char bytes[120];
};

Payload* new_payload(std::uint64_t check) {
    auto* p = gcheap::make<Payload>();
    p->check = check;
    std::memset(p->bytes, static_cast<int>(check & 0xff), sizeof p->bytes);
    return p;
}

bool intact(const Payload* p, std::uint64_t check) {
    if (p == nullptr || p->check != check) return false;
    for (char c : p->bytes) {
        if (c != static_cast<char>(check & 0xff)) return false;
    }
    return true;
}

void churn(int rounds) {
    for (int round = 0; round < rounds; ++round) {
        for (int i = 0; i < 20000; ++i) std::memset(gcheap::alloc(sizeof(Payload)), 0x11, sizeof(Payload));
        gcheap::collect();
    }
}

}  // namespace

// Every kind of static storage a program keeps pointers in.
Payload* g_zero_initialised;                          // .bss
Payload g_placeholder{};
Payload* g_in_data = &g_placeholder;                  // .data (initialised with an address)
struct Registry {
    static Payload* instance;                         // a class static
};
Payload* Registry::instance;
Payload*& function_local_static() {
    static Payload* cached = new_payload(4);          // initialised on first use
    return cached;
}
thread_local Payload* t_per_thread;                   // a thread_local

TEST_CASE("globals: every kind of global and static keeps its object", "[roots][globals]") {
    g_zero_initialised = new_payload(1);
    g_in_data = new_payload(2);
    Registry::instance = new_payload(3);
    function_local_static();
    t_per_thread = new_payload(5);
    churn(3);
    CHECK(intact(g_zero_initialised, 1));
    CHECK(intact(g_in_data, 2));
    CHECK(intact(Registry::instance, 3));
    CHECK(intact(function_local_static(), 4));
    CHECK(intact(t_per_thread, 5));
}

TEST_CASE("globals: a program that allocates before main keeps its global, thread_local and static objects",
          "[roots][globals]") {
    const gcheap::test::ChildResult run = gcheap::test::run_process(GCHEAP_TEST_PROGRAM_DIR "/static_init", {});
    INFO(run.output);
    CHECK(run.exited);
    CHECK(run.exit_code == 0);
    CHECK(run.output.find("intact") != std::string::npos);
}

TEST_CASE("globals: thread_locals of other threads keep their objects while the threads collect",
          "[roots][globals]") {
    constexpr int kThreads = 3;
    std::vector<std::thread> threads;
    std::vector<int> ok(kThreads, 0);
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([t, &ok] {
            t_per_thread = new_payload(100 + static_cast<std::uint64_t>(t));
            churn(3);
            ok[static_cast<std::size_t>(t)] = intact(t_per_thread, 100 + static_cast<std::uint64_t>(t)) ? 1 : 0;
        });
    }
    for (std::thread& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) CHECK(ok[static_cast<std::size_t>(t)] == 1);
}

namespace {

std::uintptr_t g_hidden;  // an address with its bits inverted: not a pointer to the scan

[[gnu::noinline]] void park_in_global(gcheap::detail::Heap& heap) {
    auto* p = static_cast<Payload*>(heap.alloc(sizeof(Payload), false));
    g_zero_initialised = p;
    g_hidden = ~reinterpret_cast<std::uintptr_t>(p);
}

[[gnu::noinline]] bool parked_is_live(gcheap::detail::Heap& heap) {
    gcheap::detail::ObjectRef ref;
    return heap.find_object(~g_hidden, ref);
}

}  // namespace

TEST_CASE("globals: scan_globals off leaves globals to add_roots", "[roots][globals]") {
    for (const bool scan : {true, false}) {
        gcheap::HeapOptions options = gcheap::test::manual_gc();
        options.scan_globals = scan;
        auto heap = std::make_unique<gcheap::detail::Heap>(options);
        heap->register_current_thread();
        park_in_global(*heap);
        gcheap::test::clear_stack();
        heap->collector().collect();
        INFO("scan_globals " << scan);
        CHECK(parked_is_live(*heap) == scan);
        g_zero_initialised = nullptr;
        heap->unregister_current_thread();
    }
}
