// Page heap: runs, coalescing, growth, released-page accounting (page_heap.hpp P1-P4).
#include "runtime/page_heap.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <mutex>
#include <random>
#include <vector>

using namespace gcheap::detail;

namespace {

struct PageHeapFixture {
    OsMemory os;
    ArenaIndex index{os};
    PageHeap pages{os, index};

    Span* alloc(std::size_t npages, DirtyPages* dirty_out = nullptr) {
        std::lock_guard<SpinningMutex> lock(pages.mutex());
        DirtyPages dirty;
        Span* s = pages.alloc_span_locked(npages, span_class(0, false), false, dirty);
        if (dirty_out != nullptr) *dirty_out = dirty;
        return s;
    }
    void free(Span* s) {
        std::lock_guard<SpinningMutex> lock(pages.mutex());
        pages.free_span_locked(s);
    }
    std::size_t release(std::size_t bytes) {
        std::lock_guard<SpinningMutex> lock(pages.mutex());
        return pages.release_locked(bytes);
    }
    const char* verify() {
        std::lock_guard<SpinningMutex> lock(pages.mutex());
        return pages.verify_locked();
    }
    std::uint64_t inuse() { std::lock_guard<SpinningMutex> l(pages.mutex()); return pages.heap_inuse_locked(); }
    std::uint64_t free_resident() { std::lock_guard<SpinningMutex> l(pages.mutex()); return pages.heap_free_locked(); }
    std::uint64_t released() { std::lock_guard<SpinningMutex> l(pages.mutex()); return pages.heap_released_locked(); }
    std::uint64_t sys() { std::lock_guard<SpinningMutex> l(pages.mutex()); return pages.heap_sys_locked(); }
    std::size_t runs() { std::lock_guard<SpinningMutex> l(pages.mutex()); return pages.free_run_count_locked(); }
};

}  // namespace

TEST_CASE_METHOD(PageHeapFixture, "page heap: growth counts as released, allocation moves pages to in-use",
                 "[page_heap]") {
    REQUIRE(sys() == 0);
    Span* s = alloc(3);
    REQUIRE(s != nullptr);
    CHECK(s->npages == 3);
    CHECK(s->base % kPageSize == 0);
    CHECK(inuse() == 3 * kPageSize);
    CHECK(sys() % (std::size_t{4} << 20) == 0);  // grows in 4 MiB steps, like Go
    CHECK(released() == sys() - inuse());        // the rest was never touched
    CHECK(free_resident() == 0);
    CHECK(verify() == nullptr);
    // Fresh pages read as zero and need no zeroing.
    DirtyPages dirty;
    Span* t = alloc(2, &dirty);
    CHECK_FALSE(dirty.any());
    CHECK_FALSE(t->needzero);
    free(t);
    free(s);
    CHECK(inuse() == 0);
    CHECK(free_resident() == 5 * kPageSize);
    CHECK(verify() == nullptr);
}

TEST_CASE_METHOD(PageHeapFixture, "page heap: neighbouring free runs coalesce", "[page_heap]") {
    std::vector<Span*> spans;
    for (int i = 0; i < 8; ++i) spans.push_back(alloc(1));
    for (std::size_t i = 1; i < spans.size(); ++i) REQUIRE(spans[i]->base == spans[i - 1]->base + kPageSize);
    const std::uintptr_t hole_base = spans[1]->base;  // descriptors are recycled once freed
    const std::size_t baseline_runs = runs();  // the untouched rest of the 4 MiB
    free(spans[1]);
    free(spans[3]);
    CHECK(runs() == baseline_runs + 2);
    free(spans[2]);  // joins 1..3
    CHECK(runs() == baseline_runs + 1);
    free(spans[7]);  // joins the tail run
    CHECK(runs() == baseline_runs + 1);
    CHECK(verify() == nullptr);
    // A 3-page request is served best-fit from the 3-page hole, not the big tail.
    Span* three = alloc(3);
    CHECK(three->base == hole_base);
    CHECK(verify() == nullptr);
}

TEST_CASE_METHOD(PageHeapFixture, "page heap: random allocations and frees keep both free-run indexes exact",
                 "[page_heap]") {
    // Free runs are carved and merged by moving index nodes (rekeying), so
    // every shape of neighbourhood must leave the two indexes in step (P2, P4).
    std::mt19937 rng(11);
    std::vector<Span*> live;
    std::uint64_t live_pages = 0;
    for (int step = 0; step < 4000; ++step) {
        const bool allocate = live.empty() || std::uniform_int_distribution<int>(0, 99)(rng) < 55;
        if (allocate) {
            const std::size_t npages = std::uniform_int_distribution<std::size_t>(1, 9)(rng);
            Span* s = alloc(npages);
            REQUIRE(s != nullptr);
            live.push_back(s);
            live_pages += npages;
        } else {
            const std::size_t i = std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(rng);
            live_pages -= live[i]->npages;
            free(live[i]);
            live[i] = live.back();
            live.pop_back();
        }
        if (step % 50 == 0) {
            INFO("step " << step);
            REQUIRE(verify() == nullptr);
            REQUIRE(inuse() == live_pages * kPageSize);
        }
    }
    for (Span* s : live) free(s);
    CHECK(verify() == nullptr);
    CHECK(inuse() == 0);
    CHECK(runs() <= 2);  // everything coalesced again (at most one gap per reservation)
}

TEST_CASE_METHOD(PageHeapFixture, "page heap: reused dirty pages are reported for zeroing, released ones are not",
                 "[page_heap]") {
    Span* a = alloc(4);
    const std::uintptr_t base = a->base;
    std::memset(reinterpret_cast<void*>(base), 0xAB, 4 * kPageSize);
    free(a);
    DirtyPages dirty;
    Span* b = alloc(4, &dirty);
    REQUIRE(b->base == base);
    CHECK(b->needzero);
    REQUIRE(dirty.any());
    dirty.zero(b->base, 4 * kPageSize);
    for (std::size_t i = 0; i < 4 * kPageSize; ++i) {
        if (reinterpret_cast<unsigned char*>(base)[i] != 0) FAIL("byte " << i << " not zeroed");
    }
    std::memset(reinterpret_cast<void*>(base), 0xCD, 4 * kPageSize);
    free(b);
    CHECK(release(~std::size_t{0}) >= 4 * kPageSize);
    CHECK(free_resident() == 0);
    DirtyPages after_release;
    Span* c = alloc(4, &after_release);
    REQUIRE(c->base == base);
    CHECK_FALSE(after_release.any());  // madvise(MADV_DONTNEED) pages come back zeroed
    for (std::size_t i = 0; i < 4 * kPageSize; i += 512) CHECK(reinterpret_cast<unsigned char*>(base)[i] == 0);
    CHECK(verify() == nullptr);
}

TEST_CASE_METHOD(PageHeapFixture, "page heap: release takes the highest pages first and keeps counters exact",
                 "[page_heap]") {
    std::vector<Span*> spans;
    for (int i = 0; i < 16; ++i) spans.push_back(alloc(2));
    for (Span* s : spans) std::memset(reinterpret_cast<void*>(s->base), 1, s->npages * kPageSize);
    const std::uintptr_t low = spans[0]->base;
    const std::uintptr_t high = spans[15]->base;
    free(spans[0]);
    free(spans[15]);
    const std::uint64_t released_before = released();
    CHECK(release(2 * kPageSize) == 2 * kPageSize);
    CHECK(released() == released_before + 2 * kPageSize);
    {
        std::lock_guard<SpinningMutex> lock(pages.mutex());
        CHECK(index.arena_of(high)->is_released(ArenaMeta::page_of(high)));
        CHECK_FALSE(index.arena_of(low)->is_released(ArenaMeta::page_of(low)));
    }
    CHECK(free_resident() == 2 * kPageSize);
    CHECK(inuse() + free_resident() + released() == sys());
    CHECK(verify() == nullptr);
}

TEST_CASE_METHOD(PageHeapFixture, "page heap: large runs cross arenas and map every page", "[page_heap]") {
    const std::size_t npages = kPagesPerArena + 100;  // more than one 64 MiB arena
    Span* big = alloc(npages);
    REQUIRE(big != nullptr);
    for (std::size_t p = 0; p < npages; p += 97) CHECK(index.span_of(big->base + p * kPageSize + 5) == big);
    CHECK(index.span_of(big->base + npages * kPageSize - 1) == big);
    CHECK(index.span_of(big->base + npages * kPageSize) != big);
    CHECK(verify() == nullptr);
    free(big);
    CHECK(index.span_of(big->base) == nullptr);
    CHECK(verify() == nullptr);
}

TEST_CASE_METHOD(PageHeapFixture, "page heap: OS refusals leave the heap unchanged and usable", "[page_heap]") {
    Span* first = alloc(1);
    REQUIRE(first != nullptr);
    const std::uint64_t sys_before = sys();
    // Exhaust the current 4 MiB so that the next request must grow.
    const std::size_t rest = (sys_before - inuse()) / kPageSize;
    Span* filler = alloc(rest);
    REQUIRE(filler != nullptr);
    os.fail_after_for_testing(OsCall::kCommit, 1);
    CHECK(alloc(1) == nullptr);
    CHECK(sys() == sys_before);
    CHECK(verify() == nullptr);
    os.fail_after_for_testing(OsCall::kReserve, 1);
    CHECK(alloc(kPagesPerArena * 2) == nullptr);  // needs a new reservation
    CHECK(verify() == nullptr);
    Span* after = alloc(1);  // faults cleared: works again
    REQUIRE(after != nullptr);
    CHECK(verify() == nullptr);
}

TEST_CASE_METHOD(PageHeapFixture, "page heap: a failed madvise is counted, not fatal", "[page_heap]") {
    Span* s = alloc(4);
    std::memset(reinterpret_cast<void*>(s->base), 1, 4 * kPageSize);
    free(s);
    const std::uint64_t released_before = released();
    os.fail_after_for_testing(OsCall::kRelease, 1);
    CHECK(release(~std::size_t{0}) == 0);
    CHECK(os.release_failures() == 1);
    CHECK(released() == released_before);
    CHECK(verify() == nullptr);
    CHECK(release(~std::size_t{0}) == 4 * kPageSize);
    CHECK(verify() == nullptr);
}
