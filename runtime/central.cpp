// Central span lists; see central.hpp.
#include "runtime/central.hpp"

namespace gcheap::detail {

Span* Central::pop_partial() {
    std::lock_guard<std::mutex> lock(mu_);
    return partial_.pop_front();
}

Span* Central::pop_unswept() {
    std::lock_guard<SpinningMutex> lock(unswept_mu_);
    Span* span = unswept_.pop_front();
    if (span != nullptr) span->home = SpanHome::kNone;
    unswept_count_.store(static_cast<std::uint32_t>(unswept_.size()), std::memory_order_relaxed);
    return span;
}

void Central::file_locked(Span* span) {
    if (span->free_slots() > 0) {
        span->home = SpanHome::kCentralPartial;
        partial_.push_front(span);
    } else {
        span->home = SpanHome::kCentralFull;
        full_.push_front(span);
    }
}

void Central::push_swept(Span* span, std::uint64_t freed) { push_swept(&span, 1, freed); }

void Central::push_swept(Span* const* spans, std::size_t count, std::uint64_t freed) {
    std::lock_guard<std::mutex> lock(mu_);
    frees_ += freed;
    for (std::size_t i = 0; i < count; ++i) file_locked(spans[i]);
}

void Central::add_frees(std::uint64_t freed) {
    std::lock_guard<std::mutex> lock(mu_);
    frees_ += freed;
}

void Central::uncache_span(Span* span) {
    std::lock_guard<std::mutex> lock(mu_);
    allocs_ += span->alloc_count.load(std::memory_order_relaxed) - span->alloc_count_at_cache;
    file_locked(span);
}

void Central::begin_sweep_locked() {
    for (SpanList* list : {&partial_, &full_}) {
        while (Span* span = list->pop_front()) {
            span->home = SpanHome::kUnswept;
            unswept_.push_front(span);
        }
    }
    unswept_count_.store(static_cast<std::uint32_t>(unswept_.size()), std::memory_order_relaxed);
}

void Central::adopt_locked(Central& from) {
    for (SpanList* list : {&from.partial_, &from.full_, &from.unswept_}) {
        while (Span* span = list->pop_front()) {
            span->partition = partition_;
            if (span->home == SpanHome::kUnswept) unswept_.push_front(span);
            else file_locked(span);
        }
    }
    unswept_count_.store(static_cast<std::uint32_t>(unswept_.size()), std::memory_order_relaxed);
    from.unswept_count_.store(0, std::memory_order_relaxed);
    allocs_ += from.allocs_;
    frees_ += from.frees_;
    from.allocs_ = 0;
    from.frees_ = 0;
}

const char* Central::verify_locked() const {
    const char* problem = nullptr;
    partial_.for_each([&](const Span* s) {
        if (s->free_slots() == 0) problem = "full span on the partial list (C1)";
        if (s->home != SpanHome::kCentralPartial || s->span_class != span_class_ || s->partition != partition_)
            problem = "misfiled span (C2)";
        if (const char* p = s->verify()) problem = p;
    });
    full_.for_each([&](const Span* s) {
        if (s->free_slots() != 0) problem = "span with free slots on the full list (C1)";
        if (s->home != SpanHome::kCentralFull || s->span_class != span_class_ || s->partition != partition_)
            problem = "misfiled span (C2)";
        if (const char* p = s->verify()) problem = p;
    });
    unswept_.for_each([&](const Span* s) {
        if (s->home != SpanHome::kUnswept || s->span_class != span_class_ || s->partition != partition_)
            problem = "misfiled unswept span (C2)";
    });
    return problem;
}

}  // namespace gcheap::detail
