// Heap maps: the SVG's cells, counted back from its rects, match the page
// counts of MemStats and the span counts of the fragmentation report; I/O
// errors name the path.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "runtime/heap_map.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

using namespace gcheap::detail;

namespace {

struct Cells {
    std::map<std::string, std::uint64_t> pages;  // by state class: f, r, l, o0..o5
    std::uint64_t span_titles = 0;               // <title>s of small spans and large objects
    std::uint64_t rects = 0;
};

// Counts pages by rect width (kMapCell pixels per page). Legend swatches have
// a second class ("key") and do not match.
Cells parse_svg(const std::string& svg) {
    Cells cells;
    const std::regex rect(R"re(<rect class="([a-z0-9]+)" x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)")re");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), rect); it != std::sregex_iterator(); ++it) {
        const std::uint64_t width = std::stoull((*it)[4].str());
        REQUIRE(width % kMapCell == 0);
        REQUIRE(std::stoull((*it)[5].str()) == kMapCell);
        REQUIRE(width / kMapCell <= kMapColumns);
        cells.pages[(*it)[1].str()] += width / kMapCell;
        ++cells.rects;
    }
    const std::regex title(R"(<title>(class \d+|large object))");
    cells.span_titles = static_cast<std::uint64_t>(
        std::distance(std::sregex_iterator(svg.begin(), svg.end(), title), std::sregex_iterator()));
    return cells;
}

void collect(Heap& heap) {
    gcheap::test::clear_stack();
    heap.collector().collect();
}

[[gnu::noinline]] void populate(Heap& heap, std::vector<void*>& keep) {
    // Spans of several classes and occupancies, some large objects (one
    // longer than a row of the map), and garbage for the collector to free.
    for (int i = 0; i < 20000; ++i) {
        void* p = heap.alloc(16 + static_cast<std::size_t>(i % 7) * 40, (i & 1) != 0);
        if (i % 97 == 0 || (i > 15000 && i % 2 == 0)) keep.push_back(p);
    }
    keep.push_back(heap.alloc(40000, false));
    keep.push_back(heap.alloc(200 * 8192 + 1, true));
    for (int i = 0; i < 30; ++i) heap.alloc(100000, false);  // garbage: free runs after the collection
}

}  // namespace

TEST_CASE("fragmentation heap map: cells per state match the page and span counts", "[frag][heap_map]") {
    Heap heap(gcheap::test::manual_gc());
    std::vector<void*> keep;
    keep.reserve(20000);
    heap.collector().roots().add(keep.data(), keep.data() + 20000);
    populate(heap, keep);
    collect(heap);
    heap.release_free_pages();
    heap.alloc(64 * 8192, false);  // takes part of the released pages back
    populate(heap, keep);
    collect(heap);  // frees resident pages: free runs of both kinds

    const HeapMapSnapshot snap = heap.heap_map_snapshot();
    const gcheap::FragmentationReport report = heap.fragmentation_report();
    const std::string svg = render_heap_map_svg(snap);
    Cells cells = parse_svg(svg);
    const gcheap::MemStats& s = snap.stats;
    INFO("pages: f " << cells.pages["f"] << ", r " << cells.pages["r"] << ", l " << cells.pages["l"]);

    REQUIRE(s.HeapInuse == report.stats.HeapInuse);  // nothing ran in between
    CHECK(cells.pages["f"] * kPageSize == s.HeapIdle - s.HeapReleased);
    CHECK(cells.pages["r"] * kPageSize == s.HeapReleased);
    CHECK(cells.pages["f"] > 0);
    CHECK(cells.pages["r"] > 0);
    CHECK(cells.pages["l"] == report.large.pages);
    std::uint64_t small_pages = 0;
    for (std::size_t b = 0; b < gcheap::kOccupancyBuckets; ++b) {
        std::uint64_t expected = 0;
        for (const gcheap::SizeClassFragmentation& c : report.classes) expected += c.occupancy[b] * c.pages_per_span;
        CAPTURE(b);
        CHECK(cells.pages["o" + std::to_string(b)] == expected);
        small_pages += expected;
    }
    CHECK((small_pages + cells.pages["l"]) * kPageSize == s.HeapInuse);
    CHECK(cells.span_titles == report.small_spans + report.large.objects);
    CHECK(cells.span_titles == heap.count_slow().spans);
    std::uint64_t drawn = 0;
    for (const auto& [state, pages] : cells.pages) drawn += pages;
    CHECK(drawn * kPageSize == s.HeapSys);  // every committed page, once
    CHECK_THAT(svg, Catch::Contains("<title>large object (noscan): 1638401 B in 201 pages</title>"));
    CHECK_THAT(svg, Catch::Contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK(svg.size() < 200 * (cells.rects + 10));  // small: one rect per run and row, not per page
}

TEST_CASE("fragmentation heap map: runs are disjoint, sorted and cover the committed pages", "[frag][heap_map]") {
    Heap heap(gcheap::test::no_gc());
    for (int i = 0; i < 5000; ++i) heap.alloc(static_cast<std::size_t>(i % 300) + 1, (i % 5) == 0);
    heap.alloc(100000, false);
    const HeapMapSnapshot snap = heap.heap_map_snapshot();
    REQUIRE_FALSE(snap.runs.empty());
    REQUIRE(snap.arenas.size() == heap.arena_index().arena_count());
    std::uint64_t pages = 0;
    for (std::size_t i = 0; i < snap.runs.size(); ++i) {
        pages += snap.runs[i].npages;
        if (i > 0) CHECK(snap.runs[i - 1].base + snap.runs[i - 1].npages * kPageSize <= snap.runs[i].base);
    }
    CHECK(pages * kPageSize == snap.stats.HeapSys);
}

TEST_CASE("fragmentation heap map: write_heap_map writes an SVG file or throws naming the path",
          "[frag][heap_map][api]") {
    for (int i = 0; i < 1000; ++i) gcheap::alloc(32);
    char dir[] = "/tmp/gcheap-map-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::string path = std::string(dir) + "/map.svg";
    gcheap::write_heap_map(path.c_str());
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    CHECK(text.str().rfind("<svg ", 0) == 0);
    CHECK_THAT(text.str(), Catch::Contains("</svg>"));
    CHECK(parse_svg(text.str()).span_titles > 0);
    std::remove(path.c_str());

    const std::string bad = std::string(dir) + "/no/such/dir/map.svg";
    try {
        gcheap::write_heap_map(bad.c_str());
        FAIL("write_heap_map did not throw");
    } catch (const std::system_error& e) {
        CHECK_THAT(e.what(), Catch::Contains(bad));
        CHECK(e.code() == std::errc::no_such_file_or_directory);
    }
    ::rmdir(dir);
}
