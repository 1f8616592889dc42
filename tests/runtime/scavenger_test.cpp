// Scavenger: free pages go back to the OS in the background, on demand, and
// near the memory limit, with exact counters (scavenger.hpp).
#include "runtime/scavenger.hpp"

#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "runtime/sanitizers.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

using namespace gcheap::detail;

namespace {

std::uint64_t resident_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    REQUIRE(f != nullptr);
    unsigned long size = 0;
    unsigned long resident = 0;
    REQUIRE(std::fscanf(f, "%lu %lu", &size, &resident) == 2);
    std::fclose(f);
    return static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

// Sanitizers make each release several times dearer.
constexpr std::size_t kDropBytes = (kSanitizedAddressSpace ? std::size_t{64} : std::size_t{256}) << 20;

gcheap::HeapOptions with_scavenger() {
    gcheap::HeapOptions o = gcheap::test::manual_gc();
    o.background_scavenger = true;
    return o;
}

[[gnu::noinline]] void allocate_and_touch(Heap& heap, std::size_t total, std::size_t object) {
    for (std::size_t done = 0; done < total; done += object) {
        auto* p = static_cast<unsigned char*>(heap.alloc(object, true));
        std::memset(p, 0x5A, object);  // make every page resident
    }
}

}  // namespace

TEST_CASE("scavenger: after 256 MiB is dropped, the background thread releases it and RSS falls",
          "[scavenger]") {
    Heap heap(with_scavenger());
    // The heap starts its threads on first need; start them before RSS is
    // measured, so that their stacks (and, under TSan, their shadow state)
    // do not count against the fall.
    heap.collector().collect();
    allocate_and_touch(heap, kDropBytes, 48 * 1024);
    const std::uint64_t rss_full = resident_bytes();
    const gcheap::MemStats full = heap.read_mem_stats();
    gcheap::test::clear_stack();
    heap.collector().collect();  // sweeps everything: the pages are free and resident
    const gcheap::MemStats swept = heap.read_mem_stats();
    REQUIRE(swept.HeapIdle - swept.HeapReleased > kDropBytes / 4 * 3);
    const std::uint64_t cpu_before = heap.scavenger().thread_cpu_ns();
    const auto start = std::chrono::steady_clock::now();
    // The goal is 110% of HeapInuse; poll for it with a deadline, no fixed sleep.
    const auto deadline = start + std::chrono::seconds(120);
    gcheap::MemStats s = heap.read_mem_stats();
    while (s.heap_usage() > heap.scavenger().goal() + 2 * kPageSize && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
        s = heap.read_mem_stats();
        REQUIRE(gcheap::test::check_identities(s).empty());
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu = static_cast<double>(heap.scavenger().thread_cpu_ns() - cpu_before) / 1e9;
    INFO("released " << (s.HeapReleased >> 20) << " MiB in " << elapsed << " s using " << cpu << " s of CPU");
    REQUIRE(s.heap_usage() <= heap.scavenger().goal() + 2 * kPageSize);
    const std::uint64_t released = s.HeapReleased - full.HeapReleased;  // nothing grew since `full`
    CHECK(released >= kDropBytes / 4 * 3);
    CHECK(heap.scavenger().released_bytes() == released);
    // RSS falls by about as much: within 10% (the test binary's own pages move a little).
    const std::uint64_t rss_after = resident_bytes();
    INFO("RSS " << (rss_full >> 20) << " MiB -> " << (rss_after >> 20) << " MiB");
    CHECK(rss_full - rss_after >= released / 10 * 9);
    // Paced: about 1% of one CPU; asserted loosely (5%) against scheduling noise.
    CHECK(cpu <= 0.05 * elapsed + 0.01);
}

TEST_CASE("scavenger: free_os_memory releases every free page at once", "[scavenger]") {
    gcheap::HeapOptions o = gcheap::test::manual_gc();  // no background scavenger
    Heap heap(o);
    void* keep = heap.alloc(1000, false);
    allocate_and_touch(heap, std::size_t{64} << 20, 4096);
    gcheap::test::clear_stack();
    heap.collector().collect();
    const gcheap::MemStats before = heap.read_mem_stats();
    CHECK(before.HeapIdle - before.HeapReleased > (std::uint64_t{60} << 20));
    heap.release_free_pages();
    const gcheap::MemStats after = heap.read_mem_stats();
    CHECK(after.HeapIdle == after.HeapReleased);
    CHECK(after.heap_usage() == after.HeapInuse);  // within zero pages of HeapInuse
    CHECK(after.HeapInuse == before.HeapInuse);
    CHECK(gcheap::test::check_identities(after).empty());
    CHECK(heap.verify() == nullptr);
    gcheap::keep_alive(keep);
}

TEST_CASE("scavenger: disabled, it releases nothing; enabled, it catches up", "[scavenger]") {
    gcheap::HeapOptions o = gcheap::test::manual_gc();
    Heap heap(o);
    CHECK_FALSE(heap.scavenger().enabled());
    allocate_and_touch(heap, std::size_t{32} << 20, 8192);
    gcheap::test::clear_stack();
    heap.collector().collect();
    const gcheap::MemStats swept = heap.read_mem_stats();
    CHECK(heap.scavenger().released_bytes() == 0);
    CHECK(heap.read_mem_stats().HeapReleased == swept.HeapReleased);
    CHECK_FALSE(heap.scavenger().set_enabled(true));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (heap.read_mem_stats().heap_usage() > heap.scavenger().goal() + 2 * kPageSize &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    CHECK(heap.scavenger().released_bytes() > (std::uint64_t{24} << 20));
    CHECK(heap.scavenger().set_enabled(false));
}

TEST_CASE("scavenger: identities hold while threads allocate during scavenging", "[scavenger][threads]") {
    Heap heap(with_scavenger());
    allocate_and_touch(heap, std::size_t{128} << 20, 32 * 1024);
    gcheap::test::clear_stack();
    heap.collector().collect();
    std::atomic<bool> stop{false};
    std::thread allocator([&] {
        while (!stop.load()) allocate_and_touch(heap, std::size_t{1} << 20, 1024);
    });
    std::string failure;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < deadline && failure.empty()) {
        failure = gcheap::test::check_identities(heap.read_mem_stats());
    }
    stop.store(true);
    allocator.join();
    CHECK(failure.empty());
    CHECK(heap.scavenger().released_bytes() > 0);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("scavenger: released pages that are reused count as in use again and read as zero", "[scavenger]") {
    Heap heap(gcheap::test::manual_gc());
    allocate_and_touch(heap, std::size_t{16} << 20, 1 << 20);
    gcheap::test::clear_stack();
    heap.collector().collect();
    heap.release_free_pages();
    const gcheap::MemStats released = heap.read_mem_stats();
    auto* p = static_cast<unsigned char*>(heap.alloc(1 << 20, true));
    const gcheap::MemStats reused = heap.read_mem_stats();
    CHECK(reused.HeapReleased == released.HeapReleased - (1 << 20));
    CHECK(reused.HeapInuse == released.HeapInuse + (1 << 20));
    bool zero = true;
    for (std::size_t i = 0; i < (1 << 20); i += 64) zero = zero && p[i] == 0;
    CHECK(zero);
}

TEST_CASE("scavenger: near the memory limit, growth releases free pages first", "[scavenger][pacer]") {
    gcheap::HeapOptions o = gcheap::test::manual_gc();
    Heap heap(o);
    allocate_and_touch(heap, std::size_t{48} << 20, 1 << 20);
    gcheap::test::clear_stack();
    heap.collector().collect();
    const gcheap::MemStats swept = heap.read_mem_stats();
    REQUIRE(swept.HeapIdle - swept.HeapReleased >= (std::uint64_t{40} << 20));
    // A limit below what is resident: the next growth must release first.
    heap.collector().pacer().set_memory_limit(static_cast<std::int64_t>(swept.HeapInuse + (std::uint64_t{8} << 20)));
    heap.alloc(std::size_t{4} << 20, true);
    const gcheap::MemStats after = heap.read_mem_stats();
    INFO("usage " << (after.heap_usage() >> 20) << " MiB, released " << (after.HeapReleased >> 20) << " MiB");
    CHECK(after.HeapReleased > swept.HeapReleased + (std::uint64_t{30} << 20));
    CHECK(after.heap_usage() <= swept.HeapInuse + (std::uint64_t{8} << 20) + (std::uint64_t{4} << 20));
    CHECK(gcheap::test::check_identities(after).empty());
}

TEST_CASE("scavenger: GCHEAP_SCAVENGER=off turns the background thread off", "[scavenger][options]") {
    ::setenv("GCHEAP_SCAVENGER", "off", 1);
    CHECK_FALSE(gcheap::HeapOptions::from_environment().background_scavenger);
    ::setenv("GCHEAP_SCAVENGER", "on", 1);
    CHECK(gcheap::HeapOptions::from_environment().background_scavenger);
    ::unsetenv("GCHEAP_SCAVENGER");
    CHECK(gcheap::HeapOptions().background_scavenger);
}
