// GCHEAP_* environment variables and the gctrace line (Go's GOGC, GOMEMLIMIT,
// GODEBUG=gctrace=1).
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/options.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

using namespace gcheap::detail;

namespace {

struct EnvVar {
    const char* name;
    EnvVar(const char* n, const char* value) : name(n) { ::setenv(n, value, 1); }
    ~EnvVar() { ::unsetenv(name); }
};

// Runs f with stderr redirected to a temporary file; returns what it wrote.
template <class F>
std::string capture_stderr(F&& f) {
    std::fflush(stderr);
    char path[] = "/tmp/gcheap-stderr-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    const int saved = ::dup(2);
    ::dup2(fd, 2);
    f();
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    std::string text;
    ::lseek(fd, 0, SEEK_SET);
    char buffer[4096];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
    ::close(fd);
    ::unlink(path);
    return text;
}

}  // namespace

TEST_CASE("options: defaults are Go's", "[options]") {
    const gcheap::HeapOptions o;
    CHECK(o.gc_percent == 100);
    CHECK(o.memory_limit == std::numeric_limits<std::int64_t>::max());
    CHECK(o.gctrace == 0);
}

TEST_CASE("options: GCHEAP_GOGC, GCHEAP_MEMLIMIT and GCHEAP_GCTRACE are read from the environment", "[options]") {
    {
        EnvVar gogc("GCHEAP_GOGC", "off");
        EnvVar limit("GCHEAP_MEMLIMIT", "512MiB");
        EnvVar trace("GCHEAP_GCTRACE", "1");
        const gcheap::HeapOptions o = gcheap::HeapOptions::from_environment();
        CHECK(o.gc_percent == -1);
        CHECK(o.memory_limit == std::int64_t{512} << 20);
        CHECK(o.gctrace == 1);
    }
    {
        EnvVar gogc("GCHEAP_GOGC", "50");
        EnvVar limit("GCHEAP_MEMLIMIT", "1073741824");
        CHECK(gcheap::HeapOptions::from_environment().gc_percent == 50);
        CHECK(gcheap::HeapOptions::from_environment().memory_limit == std::int64_t{1} << 30);
    }
    {
        EnvVar gogc("GCHEAP_GOGC", "lots");
        EnvVar limit("GCHEAP_MEMLIMIT", "12 parsecs");
        std::string warnings = capture_stderr([] {
            const gcheap::HeapOptions o = gcheap::HeapOptions::from_environment();
            CHECK(o.gc_percent == 100);  // unparsable: ignored, as Go ignores a bad GOGC
            CHECK(o.memory_limit == std::numeric_limits<std::int64_t>::max());
        });
        CHECK_THAT(warnings, Catch::Contains("GCHEAP_GOGC=lots"));
        CHECK_THAT(warnings, Catch::Contains("GCHEAP_MEMLIMIT=12 parsecs"));
    }
}

TEST_CASE("options: GCHEAP_SWEEPER turns the background sweeper on and off", "[options]") {
    {
        EnvVar sweeper("GCHEAP_SWEEPER", "off");
        CHECK_FALSE(gcheap::HeapOptions::from_environment().background_sweeper);
    }
    {
        EnvVar sweeper("GCHEAP_SWEEPER", "1");
        CHECK(gcheap::HeapOptions::from_environment().background_sweeper);
    }
    {
        EnvVar sweeper("GCHEAP_SWEEPER", "sometimes");
        std::string warnings = capture_stderr([] { CHECK(gcheap::HeapOptions::from_environment().background_sweeper); });
        CHECK_THAT(warnings, Catch::Contains("GCHEAP_SWEEPER=sometimes"));
    }
    {
        EnvVar sweeper("GCHEAP_SWEEPER", "off");
        gcheap::HeapOptions options = gcheap::HeapOptions::from_environment();
        options.gc_percent = 100;
        options.background_scavenger = false;
        Heap heap(options);
        [&heap] {
            for (int i = 0; i < 100000; ++i) heap.alloc(512, false);  // 50 MiB of garbage: several cycles
        }();
        CHECK(heap.read_mem_stats().NumGC >= 2);
        CHECK_FALSE(heap.collector().sweeper().thread_started());
    }
}

TEST_CASE("options: GCHEAP_SCAN_GLOBALS turns scanning of data segments and TLS on and off", "[options]") {
    CHECK(gcheap::HeapOptions{}.scan_globals);  // on by default
    CHECK(gcheap::HeapOptions::from_environment().scan_globals);
    {
        EnvVar scan("GCHEAP_SCAN_GLOBALS", "off");
        CHECK_FALSE(gcheap::HeapOptions::from_environment().scan_globals);
    }
    {
        EnvVar scan("GCHEAP_SCAN_GLOBALS", "0");
        CHECK_FALSE(gcheap::HeapOptions::from_environment().scan_globals);
    }
    {
        EnvVar scan("GCHEAP_SCAN_GLOBALS", "on");
        CHECK(gcheap::HeapOptions::from_environment().scan_globals);
    }
    {
        EnvVar scan("GCHEAP_SCAN_GLOBALS", "never");
        std::string warnings = capture_stderr([] { CHECK(gcheap::HeapOptions::from_environment().scan_globals); });
        CHECK_THAT(warnings, Catch::Contains("GCHEAP_SCAN_GLOBALS=never"));
    }
}

TEST_CASE("pacer: goal follows GOGC and the memory limit", "[options][pacer]") {
    gcheap::HeapOptions o;
    Pacer pacer(o);
    CHECK(pacer.goal() == Pacer::kHeapMinimum);  // before any cycle: 4 MiB
    pacer.commit(std::uint64_t{100} << 20, std::uint64_t{110} << 20, 0, std::uint64_t{100} << 20);
    CHECK(pacer.goal() == std::uint64_t{200} << 20);  // GOGC=100: twice the live heap
    CHECK(pacer.set_gc_percent(50) == 100);
    CHECK(pacer.goal() == std::uint64_t{150} << 20);
    CHECK(pacer.set_memory_limit(std::int64_t{120} << 20) == Pacer::kNoLimit);
    CHECK(pacer.goal() < std::uint64_t{120} << 20);  // the limit wins
    CHECK(pacer.goal() > std::uint64_t{100} << 20);
    CHECK(pacer.set_memory_limit(-1) == std::int64_t{120} << 20);  // negative: query only
    CHECK(pacer.set_gc_percent(-1) == 50);
    CHECK(pacer.goal() < std::uint64_t{120} << 20);  // GOGC off: the limit alone sets the goal
    CHECK(pacer.set_memory_limit(Pacer::kNoLimit) == std::int64_t{120} << 20);
    CHECK(pacer.goal() == Pacer::kNoGoal);
}

TEST_CASE("gctrace: one line per cycle in Go's format", "[options][gctrace]") {
    gcheap::HeapOptions o = gcheap::test::manual_gc();
    o.gctrace = 1;
    Heap heap(o);
    for (int i = 0; i < 10000; ++i) heap.alloc(100, false);
    const std::string text = capture_stderr([&] {
        heap.collector().collect();
        heap.collector().collect();
    });
    INFO(text);
    // gc 1 @0.012s 0%: 0.011+0.25+0.003 ms clock, 0.022+0/0.50/0+0.006 ms cpu, 1->1->0 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)
    const std::regex line(
        R"(gc (\d+) @\d+\.\d{3}s \d+%: [\d.]+\+[\d.]+\+[\d.]+ ms clock, [\d.]+\+[\d.]+/[\d.]+/[\d.]+\+[\d.]+ ms cpu, )"
        R"(\d+->\d+->\d+ MB, \d+ MB goal, \d+ MB stacks, \d+ MB globals, \d+ P \(forced\))");
    std::smatch m;
    std::string rest = text;
    int lines = 0;
    while (std::regex_search(rest, m, line)) {
        ++lines;
        CHECK(std::stoi(m[1].str()) == lines);
        rest = m.suffix();
    }
    CHECK(lines == 2);
}

namespace {

// One survivor per span of the 16-byte class, kept in `roots`.
[[gnu::noinline]] void make_sparse_spans(Heap& heap, std::vector<void*>& roots, std::size_t spans) {
    for (std::size_t i = 0; i < spans * 512; ++i) {
        void* p = heap.alloc(16, false);
        if (i % 512 == 0) roots.push_back(p);
    }
}

double to_double(const std::ssub_match& m) { return std::stod(m.str()); }

}  // namespace

TEST_CASE("gctrace=2: a frag line after Go's line, with what the sweep leaves", "[options][gctrace][frag]") {
    gcheap::HeapOptions o = gcheap::test::manual_gc();
    o.gctrace = 2;
    Heap heap(o);
    std::vector<void*> roots;
    roots.reserve(64);
    heap.collector().roots().add(roots.data(), roots.data() + 64);
    make_sparse_spans(heap, roots, 64);
    heap.alloc(100000, false);  // garbage
    const std::string text = capture_stderr([&] {
        gcheap::test::clear_stack();
        heap.collector().collect();
    });
    const gcheap::FragmentationReport report = heap.fragmentation_report();  // collect() swept everything
    INFO(text);
    INFO(gcheap::to_text(report));
    // frag: inuse 0.5 MB, alloc 0.0 MB, waste 0.5 MB (99%), worst: class 2 (16 B) 0.5 MB in 64 spans (0.2% full); large 0 objects 0.0 MB
    const std::regex line(
        R"(\(forced\)\nfrag: inuse ([\d.]+) MB, alloc ([\d.]+) MB, waste ([\d.]+) MB \((\d+)%\), worst: )"
        R"(class (\d+) \((\d+) B\) ([\d.]+) MB in (\d+) spans \(([\d.]+)% full\).*; large (\d+) objects ([\d.]+) MB\n)");
    std::smatch m;
    REQUIRE(std::regex_search(text, m, line));
    constexpr double kMB = 1 << 20;
    const gcheap::MemStats& s = report.stats;
    CHECK(to_double(m[1]) == Approx(static_cast<double>(s.HeapInuse) / kMB).margin(0.051));
    CHECK(to_double(m[2]) == Approx(static_cast<double>(s.HeapAlloc) / kMB).margin(0.051));
    CHECK(to_double(m[3]) == Approx(static_cast<double>(s.HeapInuse - s.HeapAlloc) / kMB).margin(0.051));
    REQUIRE_FALSE(report.classes.empty());
    const gcheap::SizeClassFragmentation* worst = &report.classes[0];
    for (const gcheap::SizeClassFragmentation& c : report.classes)
        if (c.wasted_bytes > worst->wasted_bytes) worst = &c;
    CHECK(std::stoul(m[5].str()) == 2);
    CHECK(worst->size_class == 2);
    CHECK(std::stoul(m[6].str()) == 16);
    CHECK(std::stoull(m[8].str()) == worst->spans);
    CHECK(std::stoull(m[10].str()) == report.large.objects);
    CHECK(worst->spans >= 64);
}
