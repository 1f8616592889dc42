// Heap construction, thread-cache lifecycle, lookups and verification.
#include "runtime/heap.hpp"

#include "gc/collector.hpp"
#include "runtime/scavenger.hpp"

#include <algorithm>
#include <atomic>
#include <new>
#include <stdexcept>

namespace gcheap::detail {

namespace {

std::uint64_t next_heap_id() {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;  // 0 means "no heap" in ThreadCacheSlot
}

}  // namespace

Heap::Heap(const HeapOptions& options)
    : id_(next_heap_id()),
      fast_id_(id_),
      debug_(DebugOptions{}),
      arena_index_(os_),
      profiler_(arena_index_, options.mem_profile_rate),
      pages_(os_, arena_index_),
      cache_pool_(os_) {
    partitions_[0] = std::make_unique<PartitionState>(0);
    partitions_[0]->id.store(kDefaultPartitionId, std::memory_order_relaxed);
    partitions_[0]->name = "default";
    partition_slots_.store(1, std::memory_order_release);
    // The empty span has no slots and an all-zero cache: next_free_fast()
    // fails on it and next_free_index() reports it full.
    empty_span_.state = SpanState::kInUse;
    set_debug(options.debug.merged_with(DebugOptions::from_environment()));
    collector_ = std::make_unique<Collector>(*this, options);
    scavenger_ = std::make_unique<Scavenger>(*this, options.background_scavenger);
}

void Heap::detach_threads() {
    MutatorLock<> lifecycle(lifecycle_mutex());
    std::lock_guard<std::mutex> lock(caches_mu_);
    for (ThreadCache* c = caches_; c != nullptr; c = c->registry_next) {
        // The thread owns its binding and may delete it once detached: forget it.
        if (c->binding == nullptr) continue;
        c->binding->heap = nullptr;
        c->binding->cache = nullptr;
        c->binding->current = nullptr;
        c->binding = nullptr;
    }
}

Heap::~Heap() {
    // The finalizer thread registers itself with this heap while it works:
    // it stops first, while the whole heap still stands.
    collector_->finalizers().stop();
    // Threads that exit from now on must not come back to this heap.
    detach_threads();
    if (tls_cache_slot.heap_id == id_) {
        tls_cache_slot.heap_id = 0;
        tls_cache_slot.cache = nullptr;
    }
    scavenger_.reset();
    collector_.reset();  // joins the sweeper, finalizer and mark threads
    detach_threads();    // in case a finalizer allocated on its way out
    // Members unmap all memory: the arenas (PageHeap), their metadata
    // (ArenaIndex) and the descriptor pools (FixAlloc).
}

CacheBinding* Heap::bind_current_thread(bool explicit_registration) {
    // Caller holds lifecycle_mutex().
    CacheBinding* binding = find_current_thread_binding_locked(*this);
    if (binding == nullptr) binding = bind_current_thread_locked(*this);
    if (binding->record == nullptr) binding->record = collector_->threads().add_current_thread(explicit_registration);
    if (binding->cache == nullptr) {
        SharedGate gate(gate_);
        std::lock_guard<std::mutex> lock(caches_mu_);
        ThreadCache* cache = cache_pool_.create(&empty_span_);
        if (cache == nullptr) throw std::bad_alloc();
        cache->binding = binding;
        cache->centrals = partitions_[0]->centrals.data();
        cache->partition = 0;
        cache->partition_id.store(kDefaultPartitionId, std::memory_order_relaxed);
        cache->registry_next = caches_;
        if (caches_ != nullptr) caches_->registry_prev = cache;
        caches_ = cache;
        binding->cache = cache;
        binding->current = cache;
    }
    return binding;
}

DebugOptions Heap::set_debug(const DebugOptions& options) {
    // One writer at a time, so that fast_id_ always agrees with torture.
    std::lock_guard<std::mutex> lock(debug_mu_);
    const DebugOptions previous = debug_.get();
    debug_.set(options);
    fast_id_.store(options.torture != 0 ? kNoFastPath : id_, std::memory_order_relaxed);
    return previous;
}

int Heap::set_mem_profile_rate(int rate) {
    const int previous = profiler_.set_rate(rate);
    // The calling thread's fast path would otherwise hand out the rest of
    // each cached word (up to 64 objects per class) before its slow path sees
    // the new rate: Go's rate 1 samples every allocation from the call on.
    // Other threads see it at their next slow path of each class.
    if (rate == previous) return previous;
    // The thread's slot may hold another heap's cache: find this heap's
    // caches (one per partition) through the thread's binding.
    MutatorLock<> lifecycle(lifecycle_mutex());
    const CacheBinding* binding = find_current_thread_binding_locked(*this);
    if (binding == nullptr) return previous;
    AllocRegion region(tls_cache_slot);
    for (ThreadCache* c = binding->cache; c != nullptr; c = c->thread_next) {
        for (Span* span : c->spans) {
            if (span != &empty_span_) Profiler::hold_cached_word(*span);
        }
    }
    return previous;
}

ThreadCache* Heap::bound_cache_slow() {
    ThreadCache* cache = tls_cache_slot.heap_id == id_ ? tls_cache_slot.cache : cache_for_current_thread();
    if (const std::uint64_t every = debug_.torture(); every != 0) {
        // Every `every`-th allocation of the heap, counted across threads,
        // runs a full collection first; the cache stays bound throughout.
        if (torture_allocs_.fetch_add(1, std::memory_order_relaxed) % every == every - 1) collector_->collect();
    }
    return cache;
}

ThreadCache* Heap::cache_for_current_thread() {
    MutatorLock<> lifecycle(lifecycle_mutex());
    // The thread may be registered already and merely used another heap since.
    CacheBinding* binding = bind_current_thread(false);
    // Inside a PartitionScope, the thread keeps its partition's cache even if
    // it used another heap in between.
    tls_cache_slot.heap_id = id_;
    tls_cache_slot.cache = binding->current;
    return binding->current;
}

void Heap::register_current_thread() {
    MutatorLock<> lifecycle(lifecycle_mutex());
    bind_current_thread(true);
}

bool Heap::is_current_thread_registered() {
    MutatorLock<> lifecycle(lifecycle_mutex());
    CacheBinding* binding = find_current_thread_binding_locked(*this);
    return binding != nullptr && binding->record != nullptr;
}

void Heap::unregister_current_thread() {
    MutatorLock<> lifecycle(lifecycle_mutex());
    CacheBinding* binding = find_current_thread_binding_locked(*this);
    if (binding == nullptr || binding->record == nullptr) {
        throw std::logic_error("gcheap::unregister_current_thread: this thread is not registered with the heap");
    }
    if (binding->current != binding->cache) {
        // The scope would restore a cache that unregistering destroys.
        throw std::logic_error("gcheap::unregister_current_thread: called inside a PartitionScope");
    }
    release_thread_locked(binding);
    unbind_current_thread_locked(binding);
    if (tls_cache_slot.heap_id == id_) {
        tls_cache_slot.heap_id = 0;
        tls_cache_slot.cache = nullptr;
    }
}

void Heap::release_thread_locked(CacheBinding* binding) {
    if (binding->cache != nullptr) {
        ThreadCache* cache = binding->cache;  // and its chain: one cache per partition used
        binding->cache = nullptr;
        binding->current = nullptr;
        SharedGate gate(gate_);
        while (cache != nullptr) {
            ThreadCache* next = cache->thread_next;
            flush_cache_locked(cache);
            std::lock_guard<std::mutex> lock(caches_mu_);
            tiny_allocs_folded_ += cache->tiny_allocs.load(std::memory_order_relaxed);
            if (cache->registry_prev != nullptr) cache->registry_prev->registry_next = cache->registry_next;
            else caches_ = cache->registry_next;
            if (cache->registry_next != nullptr) cache->registry_next->registry_prev = cache->registry_prev;
            cache_pool_.destroy(cache);
            cache = next;
        }
    }
    if (binding->record != nullptr) {
        collector_->threads().remove(binding->record);
        binding->record = nullptr;
    }
}

void Heap::flush_all_caches_stopped() {
    for (ThreadCache* c = caches_; c != nullptr; c = c->registry_next) flush_cache_locked(c);
}

void Heap::flush_cache_locked(ThreadCache* cache) {
    for (std::size_t spc = 0; spc < kNumSpanClasses; ++spc) {
        Span* span = cache->spans[spc];
        if (span == &empty_span_) continue;
        cache->spans[spc] = &empty_span_;
        Profiler::unplant(*span);  // the span's whole alloc_cache goes back with it
        heap_live_.fetch_sub(std::uint64_t{span->free_slots()} * span->elem_size, std::memory_order_relaxed);
        central_of(span).uncache_span(span);
    }
    // The tiny block stays allocated: it dies like any object once unreachable.
    cache->tiny = 0;
    cache->tiny_offset = 0;
}

bool Heap::find_object(std::uintptr_t addr, ObjectRef& out) const {
    Span* span = arena_index_.span_of(addr);
    if (span == nullptr || addr >= span->limit()) return false;  // free page, or a span's tail
    const std::uint32_t index = span->object_index(addr);
    if (!span->is_allocated_while_sweeping(index)) return false;
    out = {span, index, span->object_base(index)};
    return true;
}

std::uint64_t Heap::non_heap_sys_bytes() {
    MutatorLock<SpinningMutex> lock(pages_.mutex());
    return pages_.span_sys_bytes_locked() + pages_.other_sys_bytes_locked() + arena_index_.sys_bytes() +
           cache_pool_.sys_bytes();
}

PageState Heap::page_state(std::uintptr_t addr) {
    std::lock_guard<SpinningMutex> lock(pages_.mutex());
    ArenaMeta* meta = arena_index_.arena_of(addr);
    if (meta == nullptr) return PageState::kOutside;
    const std::size_t page = ArenaMeta::page_of(addr);
    if (meta->spans[page].load(std::memory_order_relaxed) != nullptr) return PageState::kInUse;
    if (meta->is_released(page)) return PageState::kReleased;
    return pages_.is_committed_free_locked(addr) ? PageState::kFree : PageState::kOutside;
}

std::size_t Heap::release_free_pages() {
    SharedGate gate(gate_);
    std::lock_guard<SpinningMutex> lock(pages_.mutex());
    return pages_.release_locked(~std::size_t{0});
}

Heap& create_default_heap() {
    static Heap* const heap = [] {
        auto* h = new Heap(HeapOptions::from_environment());
        g_default_heap.store(h, std::memory_order_release);
        return h;
    }();
    return *heap;
}

}  // namespace gcheap::detail
