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
