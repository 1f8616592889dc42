// Central span lists; see central.hpp.
#include "runtime/central.hpp"

namespace gcheap::detail {

Span* Central::cache_span(PageHeap& pages) {
    Span* span = nullptr;
    {
        std::lock_guard<std::mutex> lock(mu_);
        span = partial_.pop_front();
    }
    if (span == nullptr) {
        const std::size_t size_class = span_class_size_class(span_class_);
        DirtyPages dirty;
        std::lock_guard<std::mutex> lock(pages.mutex());
        span = pages.alloc_span_locked(kClassPages[size_class], span_class_, span_class_noscan(span_class_), dirty);
        if (span == nullptr) return nullptr;
        // Slots are zeroed lazily on allocation when span->needzero is set.
    }
    span->home = SpanHome::kThreadCache;
    span->alloc_count_at_cache = span->alloc_count.load(std::memory_order_relaxed);
    return span;
}

void Central::uncache_span(Span* span) {
    std::lock_guard<std::mutex> lock(mu_);
    allocs_ += span->alloc_count.load(std::memory_order_relaxed) - span->alloc_count_at_cache;
    if (span->free_slots() > 0) {
        span->home = SpanHome::kCentralPartial;
        partial_.push_front(span);
    } else {
        span->home = SpanHome::kCentralFull;
        full_.push_front(span);
    }
}

const char* Central::verify_locked() const {
    const char* problem = nullptr;
    partial_.for_each([&](const Span* s) {
        if (s->free_slots() == 0) problem = "full span on the partial list (C1)";
        if (s->home != SpanHome::kCentralPartial || s->span_class != span_class_) problem = "misfiled span (C2)";
        if (const char* p = s->verify()) problem = p;
    });
    full_.for_each([&](const Span* s) {
        if (s->free_slots() != 0) problem = "span with free slots on the full list (C1)";
        if (s->home != SpanHome::kCentralFull || s->span_class != span_class_) problem = "misfiled span (C2)";
        if (const char* p = s->verify()) problem = p;
    });
    return problem;
}

}  // namespace gcheap::detail
