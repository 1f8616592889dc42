// Span allocation state: free index, alloc cache and alloc bits (span.hpp S1-S3).
#include "runtime/span.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <vector>

using namespace gcheap::detail;

namespace {

constexpr std::uintptr_t kFakeBase = 0x100000000;  // spans only compute addresses, never touch them

// Allocates every remaining slot through the fast path, falling back to
// next_free_index() as the allocator's slow path does.
std::vector<std::uint32_t> drain(Span& span) {
    std::vector<std::uint32_t> got;
    for (;;) {
        if (void* p = span.next_free_fast()) {
            got.push_back(span.object_index(reinterpret_cast<std::uintptr_t>(p)));
            continue;
        }
        const std::uint32_t index = span.next_free_index();
        if (index == span.nelems) break;
        span.alloc_count.fetch_add(1);
        got.push_back(index);
    }
    return got;
}

}  // namespace

TEST_CASE("span: a fresh span hands out every slot once, in order", "[span]") {
    for (std::size_t cls : {1, 2, 5, 10, 26, 35, 50, 67}) {
        CAPTURE(cls);
        Span span;
        span.init(kFakeBase, kClassPages[cls], span_class(cls, false), false);
        REQUIRE(span.verify() == nullptr);
        const std::vector<std::uint32_t> got = drain(span);
        REQUIRE(got.size() == class_objects(cls));
        for (std::uint32_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == i);
        CHECK(span.alloc_count.load() == span.nelems);
        CHECK(span.free_slots() == 0);
        CHECK(span.verify() == nullptr);
        CHECK(span.next_free_fast() == nullptr);
        CHECK(span.next_free_index() == span.nelems);
    }
}

TEST_CASE("span: after a sweep only the slots whose alloc bit is clear are reused", "[span]") {
    Span span;
    const std::size_t cls = 2;  // 512 slots of 16 bytes: eight 64-slot words
    span.init(kFakeBase, kClassPages[cls], span_class(cls, true), true);
    // Pretend a sweep kept every 3rd object and the whole of word 2.
    std::set<std::uint32_t> live;
    for (std::uint32_t i = 0; i < span.nelems; ++i) {
        if (i % 3 == 0 || (i >= 128 && i < 192)) live.insert(i);
    }
    for (std::uint32_t i : live) span.alloc_bits()[i / 64] |= std::uint64_t{1} << (i % 64);
    span.alloc_count.store(static_cast<std::uint32_t>(live.size()));
    span.free_index = 0;
    span.refill_alloc_cache(0);
    REQUIRE(span.verify() == nullptr);

    const std::vector<std::uint32_t> got = drain(span);
    std::set<std::uint32_t> expected;
    for (std::uint32_t i = 0; i < span.nelems; ++i) {
        if (live.count(i) == 0) expected.insert(i);
    }
    REQUIRE(got.size() == expected.size());
    REQUIRE(std::set<std::uint32_t>(got.begin(), got.end()) == expected);
    CHECK(span.alloc_count.load() == span.nelems);
    CHECK(span.verify() == nullptr);
}

TEST_CASE("span: object_index maps interior addresses to their object", "[span]") {
    Span span;
    const std::size_t cls = 37;  // 1792-byte objects over two pages, with a tail
    span.init(kFakeBase, kClassPages[cls], span_class(cls, false), false);
    for (std::uint32_t i = 0; i < span.nelems; ++i) {
        const std::uintptr_t base = span.object_base(i);
        CHECK(span.object_index(base) == i);
        CHECK(span.object_index(base + span.elem_size - 1) == i);
    }
    CHECK(span.limit() <= span.end());
    CHECK(span.end() - span.limit() == kClassPages[cls] * kPageSize - class_objects(cls) * kClassSize[cls]);
}

TEST_CASE("span: verify() reports a corrupted count", "[span]") {
    Span span;
    span.init(kFakeBase, 1, span_class(4, false), false);
    REQUIRE(span.next_free_fast() != nullptr);
    REQUIRE(span.verify() == nullptr);
    span.alloc_count.store(5);
    CHECK(span.verify() != nullptr);
}

TEST_CASE("span list: push, remove and pop keep the size", "[span]") {
    Span a, b, c;
    SpanList list;
    list.push_front(&a);
    list.push_front(&b);
    list.push_front(&c);
    CHECK(list.size() == 3);
    list.remove(&b);
    CHECK(list.size() == 2);
    CHECK(list.pop_front() == &c);
    CHECK(list.pop_front() == &a);
    CHECK(list.empty());
    CHECK(list.pop_front() == nullptr);
}
