// Sampling heap profiler: the estimate is within statistical bounds of the
// truth, rate 1 records every allocation with its caller's stack, sweeping
// removes freed samples, the legacy text profile parses (and go tool pprof
// reads it when Go is installed), the sparse-span sites report, and several
// allocating threads.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace gcheap::detail;
using gcheap::MemProfileRecord;

namespace {

// The allocation sites. Each does something after its last allocation, so
// that the call to the heap is not a tail call: the sampled stack must start
// inside the site itself.
[[gnu::noinline]] void alloc_site_a(Heap& heap, std::vector<void*>& out, int n, std::size_t size) {
    for (int i = 0; i < n; ++i) out.push_back(heap.alloc(size, false));
    gcheap::keep_alive(out.data());
}

[[gnu::noinline]] void alloc_site_b(Heap& heap, std::vector<void*>& out, int n, std::size_t size) {
    for (int i = 0; i < n; ++i) out.push_back(heap.alloc(size, false));
    gcheap::keep_alive(out.data());
}

[[gnu::noinline]] void default_heap_site(std::vector<void*>& out, int n) {
    for (int i = 0; i < n; ++i) out.push_back(gcheap::alloc(40));
    gcheap::keep_alive(out.data());
}

// Whether `pc`, a return address, lies in `fn`: the unwinder's tables
// (the FDEs the compiler emits for every function) know each function's range.
template <class Fn>
bool in_function(std::uintptr_t pc, Fn* fn) {
    return _Unwind_FindEnclosingFunction(reinterpret_cast<void*>(pc - 1)) == reinterpret_cast<void*>(fn);
}

// Whether a sampled stack comes from `fn`. Optimised builds start the
// stack in the site itself; where gcheap's inline functions are not inlined
// (sanitizer builds), their frames come first.
bool from_site(const std::vector<std::uintptr_t>& stack,
               void (*fn)(Heap&, std::vector<void*>&, int, std::size_t)) {
    for (std::uintptr_t pc : stack) {
        if (in_function(pc, fn)) return true;
    }
    return false;
}

const MemProfileRecord* find_record(const std::vector<MemProfileRecord>& records, std::size_t size) {
    for (const MemProfileRecord& r : records) {
        if (r.object_size == size) return &r;
    }
    return nullptr;
}

// The records of one object size whose stacks pass through `fn`, summed.
// Optimised builds give one record per site; builds that do not inline the
// fast path may record a thread's first allocation, which binds the thread
// to the heap, under a stack with one more gcheap frame.
struct SiteTotals {
    std::size_t records = 0;
    std::int64_t alloc_objects = 0;
    std::int64_t alloc_bytes = 0;
    std::int64_t inuse_objects = 0;
};

template <class Site>
SiteTotals site_totals(const std::vector<MemProfileRecord>& records, std::size_t size, Site fn) {
    SiteTotals t;
    for (const MemProfileRecord& r : records) {
        if (r.object_size != size || r.stack.empty()) continue;
        bool from_fn = false;
        for (std::uintptr_t pc : r.stack) from_fn = from_fn || in_function(pc, fn);
        if (!from_fn) continue;
        ++t.records;
        t.alloc_objects += static_cast<std::int64_t>(r.alloc_objects);
        t.alloc_bytes += static_cast<std::int64_t>(r.alloc_bytes);
        t.inuse_objects += static_cast<std::int64_t>(r.inuse_objects());
    }
    return t;
}

std::string temp_path(const char* name) {
    return std::string("/tmp/gcheap_profiler_test_") + std::to_string(getpid()) + "_" + name;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Parses Go's legacy text heap profile as pprof's legacy parser does
// (profile/legacy_profile.go): header, sample lines up to the memory map
// marker, then /proc/self/maps lines. Returns "" or what is wrong.
std::string check_legacy_profile(const std::string& text, int rate, std::uint64_t& lines) {
    static const std::regex header(R"(^heap profile: *(\d+): *(\d+) *\[ *(\d+): *(\d+) *\] *@ *heap/(\d+)$)");
    static const std::regex sample(R"(^(\d+): *(\d+) *\[ *(\d+): *(\d+) *\] *@((?: 0x[0-9a-f]+)*)$)");
    static const std::regex mapping(R"(^[0-9a-f]+-[0-9a-f]+ [-rwxps]{4} [0-9a-f]+ \S+ \d+ *.*$)");
    std::istringstream in(text);
    std::string line;
    std::smatch m;
    if (!std::getline(in, line) || !std::regex_match(line, m, header)) return "bad header: " + line;
    const std::uint64_t h[4] = {std::stoull(m[1]), std::stoull(m[2]), std::stoull(m[3]), std::stoull(m[4])};
    if (std::stoll(m[5]) != 2LL * rate) return "header period is not 2 x rate: " + line;
    std::uint64_t sum[4] = {};
    lines = 0;
    bool map_seen = false;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        if (line == "--- Memory map: ---") {
            map_seen = true;
            break;
        }
        if (!std::regex_match(line, m, sample)) return "bad sample line: " + line;
        for (int i = 0; i < 4; ++i) sum[i] += std::stoull(m[i + 1]);
        if (std::stoull(m[1]) > std::stoull(m[3]) || std::stoull(m[2]) > std::stoull(m[4])) {
            return "more in use than allocated: " + line;
        }
        if (std::string(m[5]).empty()) return "sample without a stack: " + line;
        ++lines;
    }
    if (!map_seen) return "no memory map section";
    for (int i = 0; i < 4; ++i) {
        if (sum[i] != h[i]) return "header totals differ from the sum of the lines";
    }
    int mappings = 0, executable = 0;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        if (!std::regex_match(line, mapping)) return "bad mapping line: " + line;
        ++mappings;
        if (line.find(" r-xp ") != std::string::npos) ++executable;
    }
    if (mappings == 0 || executable == 0) return "no executable mapping";
    return "";
}

}  // namespace

TEST_CASE("profiler: off by default; rates are set and returned like MemProfileRate", "[profiler]") {
    Heap heap(gcheap::test::no_gc());
    CHECK(heap.profiler().rate() == 0);
    std::vector<void*> objects;
    alloc_site_a(heap, objects, 1000, 64);
    CHECK(heap.profiler().records().empty());
    CHECK(heap.set_mem_profile_rate(512 * 1024) == 0);
    CHECK(heap.set_mem_profile_rate(1) == 512 * 1024);
    CHECK_THROWS_AS(heap.set_mem_profile_rate(-1), std::invalid_argument);
    CHECK(heap.set_mem_profile_rate(0) == 1);
    alloc_site_a(heap, objects, 1000, 64);
    CHECK(heap.profiler().records().empty());

    gcheap::HeapOptions options = gcheap::test::no_gc();
    options.mem_profile_rate = 4096;
    Heap profiled(options);
    CHECK(profiled.profiler().rate() == 4096);
}

TEST_CASE("profiler: rate 1 records every allocation with the caller's stack", "[profiler]") {
    Heap heap(gcheap::test::no_gc());
    heap.set_mem_profile_rate(1);
    std::vector<void*> objects;
    alloc_site_a(heap, objects, 1000, 48);
    alloc_site_b(heap, objects, 10, 40000);  // large: 5 pages each
    void* aligned = heap.alloc_aligned(100, 64, false);
    const std::vector<MemProfileRecord> records = heap.profiler().records();
    const MemProfileRecord* small = find_record(records, 48);
    REQUIRE(small != nullptr);
    const SiteTotals site_a = site_totals(records, 48, alloc_site_a);
    CHECK(site_a.alloc_objects == 1000);
    CHECK(site_a.alloc_bytes == 48000);
    CHECK(site_a.inuse_objects == 1000);
    REQUIRE(!small->stack.empty());
    CHECK(from_site(small->stack, alloc_site_a));
    // gcheap's own out-of-line frames are left out: the stack starts at the
    // site when the heap's inline fast path is inlined into it.
    if (!in_function(small->stack[0], alloc_site_a)) {
        WARN("the stack starts above the allocation site: gcheap's inline functions were not inlined in this build");
    }
    const MemProfileRecord* large = find_record(records, 40960);
    REQUIRE(large != nullptr);
    CHECK(large->alloc_objects == 10);
    REQUIRE(!large->stack.empty());
    CHECK(from_site(large->stack, alloc_site_b));
    CHECK(find_record(records, 128) != nullptr);  // 100 bytes aligned to 64: the 128-byte class
    CHECK(heap.profiler().live_samples() == 1011);
    gcheap::keep_alive(aligned);
}

TEST_CASE("profiler: a new rate applies from the caller's next allocation, other threads' within a word", "[profiler]") {
    Heap heap(gcheap::test::no_gc());
    heap.set_mem_profile_rate(1 << 30);  // practically nothing sampled
    std::vector<void*> objects;
    // Warm-up: the thread's cached 48-byte span now has a word partly used
    // and its countdown drawn at the old rate.
    alloc_site_a(heap, objects, 10, 48);
    std::vector<void*> other_objects;
    std::atomic<int> phase{0};
    std::thread other([&] {
        alloc_site_a(heap, other_objects, 10, 64);
        phase.store(1);
        while (phase.load() != 2) std::this_thread::yield();
        alloc_site_b(heap, other_objects, 200, 64);
    });
    while (phase.load() != 1) std::this_thread::yield();
    CHECK(heap.set_mem_profile_rate(1) == (1 << 30));
    alloc_site_b(heap, objects, 100, 48);
    phase.store(2);
    other.join();
    const std::vector<MemProfileRecord> records = heap.profiler().records();
    // Rate 1 samples every allocation from the call on, on the calling thread.
    CHECK(site_totals(records, 48, alloc_site_b).alloc_objects == 100);
    // Another thread takes the rate at its next slow path of each class: at
    // most the rest of one 64-slot word (the whole last word of a span whose
    // slots are a multiple of 64) goes unsampled.
    const std::int64_t other_sampled = site_totals(records, 64, alloc_site_b).alloc_objects;
    CHECK(other_sampled >= 200 - 64);
    CHECK(other_sampled <= 200);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("profiler: a rate change invents no samples and keeps the heap valid", "[profiler]") {
    Heap heap(gcheap::test::no_gc());
    heap.set_mem_profile_rate(1 << 30);
    std::vector<void*> objects;
    // Ten classes cached, each with a word partly used.
    for (std::size_t size = 16; size <= 160; size += 16) alloc_site_a(heap, objects, 3, size);
    // A span filled to its last slot: its cached word has only bits past the end.
    alloc_site_a(heap, objects, 170 - 3, 48);  // the 48-byte class: 170 slots a span
    CHECK(heap.verify() == nullptr);
    // A rate barely different: a point held back or planted at the old rate
    // must be redrawn in every class, not taken as a sample. At about one
    // sample per GiB, a real sample among these 1.5 KiB is a 1-in-10^6 event.
    heap.set_mem_profile_rate((1 << 30) - 1);
    CHECK(heap.verify() == nullptr);
    gcheap::keep_alive(heap.alloc(40000, false));  // a large object draws from the same thread's state
    for (std::size_t size = 16; size <= 160; size += 16) alloc_site_b(heap, objects, 1, size);
    CHECK(heap.profiler().live_samples() == 0);
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("profiler: tiny allocations are sampled by block, as in Go", "[profiler]") {
    Heap heap(gcheap::test::no_gc());
    heap.set_mem_profile_rate(1);
    for (int i = 0; i < 100; ++i) gcheap::keep_alive(heap.alloc(8, true));  // two per 16-byte block
    std::uint64_t objects = 0, bytes = 0;
    for (const MemProfileRecord& r : heap.profiler().records()) {
        objects += r.alloc_objects;
        bytes += r.alloc_bytes;
    }
    CHECK(objects >= 50);
    CHECK(objects <= 51);
    CHECK(bytes == 16 * objects);
}

TEST_CASE("profiler: the scaled estimate is within statistical bounds of the truth", "[profiler]") {
    Heap heap(gcheap::test::no_gc());
    constexpr int kRate = 4096;
    constexpr int kObjects = 200000;
    constexpr std::size_t kSize = 64;
    heap.set_mem_profile_rate(kRate);
    std::vector<void*> objects;
    objects.reserve(kObjects);
    alloc_site_a(heap, objects, kObjects, kSize);
    const MemProfileRecord* r = nullptr;
    const std::vector<MemProfileRecord> records = heap.profiler().records();
    r = find_record(records, kSize);
    REQUIRE(r != nullptr);
    // Each object is sampled with probability p = 1 - exp(-64/4096): the
    // sample count is binomial; allow four standard deviations.
    const double p = -std::expm1(-static_cast<double>(kSize) / kRate);
    const double expected = kObjects * p;
    const double sigma = std::sqrt(kObjects * p * (1 - p));
    INFO("samples " << r->alloc_objects << ", expected " << expected << " +- " << sigma);
    CHECK(std::abs(static_cast<double>(r->alloc_objects) - expected) < 4 * sigma);
    const double estimate = gcheap::scale_heap_sample(static_cast<double>(r->alloc_bytes), kSize, kRate);
    const double truth = static_cast<double>(kObjects * kSize);
    CHECK(std::abs(estimate - truth) < 4 * sigma / p * kSize);
    CHECK(gcheap::scale_heap_sample(10, 64, 1) == 10);
}

TEST_CASE("profiler: frees found by the sweeper reduce the in-use figures", "[profiler]") {
    Heap heap(gcheap::test::manual_gc());
    heap.set_mem_profile_rate(1);
    constexpr int kKept = 100;
    // Kept objects are rooted in a registered range; the others only in a
    // std::vector, which the collector does not scan.
    std::vector<void*> kept, dropped;
    kept.reserve(kKept);
    alloc_site_a(heap, kept, kKept, 32);
    heap.collector().roots().add(kept.data(), kept.data() + kept.size());
    alloc_site_b(heap, dropped, 1000, 32);
    alloc_site_b(heap, dropped, 10, 50000);
    dropped.clear();
    dropped.shrink_to_fit();
    gcheap::test::clear_stack();
    heap.collector().collect();
    const std::vector<MemProfileRecord> records = heap.profiler().records();
    std::uint64_t kept_inuse = 0, dropped_inuse = 0, dropped_frees = 0, large_frees = 0;
    for (const MemProfileRecord& r : records) {
        REQUIRE(!r.stack.empty());
        if (from_site(r.stack, alloc_site_a)) kept_inuse += r.inuse_objects();
        if (from_site(r.stack, alloc_site_b) && r.object_size == 32) {
            dropped_inuse += r.inuse_objects();
            dropped_frees += r.free_objects;
        }
        if (r.object_size == 57344) large_frees += r.free_objects;
    }
    CHECK(kept_inuse == kKept);
    // A conservative scan may find a stale word or two.
    CHECK(dropped_inuse <= 5);
    CHECK(dropped_frees >= 995);
    CHECK(large_frees >= 9);
    std::uint64_t inuse = 0;
    for (const MemProfileRecord& r : records) inuse += r.inuse_objects();
    CHECK(heap.profiler().live_samples() == inuse);
    heap.collector().roots().remove(kept.data(), kept.data() + kept.size());
    CHECK(heap.verify() == nullptr);
}

TEST_CASE("profiler: the legacy text profile parses", "[profiler]") {
    Heap heap(gcheap::test::no_gc());
    heap.set_mem_profile_rate(512);
    std::vector<void*> objects;
    alloc_site_a(heap, objects, 20000, 64);
    alloc_site_b(heap, objects, 2000, 1000);
    const std::string path = temp_path("legacy.heap");
    std::FILE* out = std::fopen(path.c_str(), "w");
    REQUIRE(out != nullptr);
    CHECK(heap.profiler().write_legacy(out));
    std::fclose(out);
    const std::string text = slurp(path);
    std::remove(path.c_str());
    std::uint64_t lines = 0;
    INFO(text.substr(0, 2000));
    CHECK(check_legacy_profile(text, 512, lines) == "");
    CHECK(lines >= 2);
}

TEST_CASE("profiler: write_heap_profile on the default heap, read by go tool pprof if installed", "[profiler]") {
    gcheap::set_mem_profile_rate(1);
    std::vector<void*> objects;
    default_heap_site(objects, 500);
    CHECK(gcheap::set_mem_profile_rate(0) == 1);
    const std::string path = temp_path("default.heap");
    gcheap::write_heap_profile(path.c_str());
    std::uint64_t lines = 0;
    CHECK(check_legacy_profile(slurp(path), 1, lines) == "");
    CHECK(lines >= 1);
    CHECK(site_totals(gcheap::mem_profile(), 48, default_heap_site).alloc_objects == 500);
    CHECK_THROWS_AS(gcheap::write_heap_profile("/nonexistent-dir/x.heap"), std::system_error);

    if (std::system("command -v go >/dev/null 2>&1") != 0) {
        WARN("skipped: go is not on PATH, so go tool pprof cannot be run on the profile");
        std::remove(path.c_str());
        return;
    }
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    REQUIRE(n > 0);
    exe[n] = '\0';
    // Nothing was freed, so pprof sees one pair of values (objects, space)
    // rather than alloc_* and inuse_* (legacy_profile.go's hasAlloc).
    const std::string command = std::string("go tool pprof -top '") + exe + "' '" + path + "' 2>&1";
    std::FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string output;
    char buffer[4096];
    std::size_t got;
    while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, got);
    const int status = pclose(pipe);
    std::remove(path.c_str());
    INFO(output);
    CHECK(status == 0);
    // 500 objects of the 48-byte class at rate 1 (no scaling): 24000 B.
    CHECK(output.find("Showing nodes accounting for 23.44kB, 100% of 23.44kB total") != std::string::npos);
    // Symbolized against this binary. (pprof may leave a frame unnamed when
    // addr2line adds "(discriminator N)" to its line, as for the site's loop.)
    CHECK((output.find("default_heap_site") != std::string::npos || output.find("C_A_T_C_H_T_E_S_T") != std::string::npos));
}

TEST_CASE("profiler: sparse-span sites name the allocation sites that pin sparse spans", "[profiler]") {
    Heap heap(gcheap::test::manual_gc());
    heap.set_mem_profile_rate(1);
    std::vector<void*> sparse, dense;
    alloc_site_a(heap, sparse, 16384, 64);  // 128 spans of 128 slots
    std::vector<void*> survivors;
    survivors.reserve(128);
    for (std::size_t i = 0; i < sparse.size(); i += 128) survivors.push_back(sparse[i]);  // one per span
    sparse.clear();
    sparse.shrink_to_fit();
    dense.reserve(85 * 48);
    alloc_site_b(heap, dense, 85 * 48, 96);  // 48 spans of 85 slots, all kept
    heap.collector().roots().add(survivors.data(), survivors.data() + survivors.size());
    heap.collector().roots().add(dense.data(), dense.data() + dense.size());
    gcheap::test::clear_stack();
    heap.collector().collect();

    const gcheap::SparseSiteReport report = heap.profiler().sparse_sites(0.25);
    // Summed over site a's entries (see SiteTotals for why there may be two).
    std::uint64_t a_objects = 0, a_bytes = 0, a_spans = 0;
    double a_estimated = 0;
    for (const gcheap::SparseSite& s : report.sites) {
        REQUIRE(!s.stack.empty());
        if (from_site(s.stack, alloc_site_b)) FAIL_CHECK("a site whose spans are full is reported");
        if (!from_site(s.stack, alloc_site_a)) continue;
        a_objects += s.sampled_objects;
        a_bytes += s.sampled_bytes;
        a_spans += s.spans;
        a_estimated += static_cast<double>(s.estimated_bytes);
    }
    CHECK(a_objects >= 128);
    CHECK(a_objects <= 133);  // stale stack words may keep a few more
    CHECK(a_spans >= 120);
    CHECK(a_bytes == 64 * a_objects);
    CHECK(a_estimated == Approx(static_cast<double>(a_bytes)));  // rate 1: no scaling
    const std::string text = gcheap::to_text(report);
    CHECK(text.find("spans under 25% full") != std::string::npos);
    CHECK(text.find("sparse spans") != std::string::npos);
    CHECK(heap.profiler().sparse_sites(0.0).sites.empty());
    CHECK_THROWS_AS(heap.profiler().sparse_sites(1.5), std::invalid_argument);
    heap.collector().roots().remove(survivors.data(), survivors.data() + survivors.size());
    heap.collector().roots().remove(dense.data(), dense.data() + dense.size());
}

TEST_CASE("profiler: several threads allocate, sample and collect", "[profiler][threads]") {
    gcheap::HeapOptions options = gcheap::test::manual_gc();
    options.gc_percent = 100;
    options.background_sweeper = true;
    options.mem_profile_rate = 256;
    Heap heap(options);
    constexpr int kThreads = 4;
    std::atomic<int> running{kThreads};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 60000; ++i) {
                const std::size_t size = 1 + static_cast<std::size_t>((i * 7919 + t * 31) % 3000);
                static_cast<unsigned char*>(heap.alloc(size, (i & 1) != 0))[0] = 1;
                if (t == 0 && i % 20000 == 0) heap.collector().collect();
                if (t == 1 && i == 30000) heap.set_mem_profile_rate(1);
                if (t == 1 && i == 31000) heap.set_mem_profile_rate(256);
            }
            heap.unregister_current_thread();
            running--;
        });
    }
    std::uint64_t reads = 0;
    while (running.load() > 0) {
        for (const MemProfileRecord& r : heap.profiler().records()) REQUIRE(r.free_objects <= r.alloc_objects);
        ++reads;
    }
    for (auto& t : threads) t.join();
    gcheap::test::clear_stack();
    heap.collector().collect();
    std::uint64_t allocs = 0, inuse = 0;
    for (const MemProfileRecord& r : heap.profiler().records()) {
        allocs += r.alloc_objects;
        inuse += r.inuse_objects();
    }
    INFO("reads " << reads << ", samples " << allocs << ", still in use " << inuse);
    CHECK(allocs > 1000);
    CHECK(inuse == heap.profiler().live_samples());
    CHECK(inuse < allocs / 10);  // nothing was kept: only stale words pin samples
    CHECK(heap.verify() == nullptr);
}
