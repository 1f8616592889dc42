// Finalizers; see finalizers.hpp.
#include "gc/finalizers.hpp"

#include "gc/marker.hpp"
#include "runtime/heap.hpp"
#include "runtime/sync.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

namespace gcheap::detail {

Finalizers::Finalizers(Heap& heap) : heap_(heap) {}

Finalizers::~Finalizers() { stop(); }

void Finalizers::stop() {
    std::thread thread;
    {
        MutatorLock<> lock(mu_);
        stopping_ = true;
        thread = std::move(thread_);
    }
    cv_.notify_all();
    // A finalizer must not destroy its own heap: it would join itself here.
    if (thread.joinable()) thread.join();
}

void Finalizers::set(void* object, FinalizerFn fn) {
    const auto addr = reinterpret_cast<std::uintptr_t>(object);
    ObjectRef ref;
    if (!heap_.find_object(addr, ref)) {
        char text[96];
        std::snprintf(text, sizeof text, "gcheap::set_finalizer: %p is not an allocated gcheap object", object);
        throw std::invalid_argument(text);
    }
    const bool tiny_block = ref.span->noscan && ref.span->size_class == kTinySizeClass;
    if (ref.base != addr && !tiny_block) {
        char text[128];
        std::snprintf(text, sizeof text, "gcheap::set_finalizer: %p points inside the object at %#lx, not at its start",
                      object, static_cast<unsigned long>(ref.base));
        throw std::invalid_argument(text);
    }
    MutatorLock<> lock(mu_);
    if (fn == nullptr) {
        table_.erase(addr);
        return;
    }
    if (table_.count(addr) != 0) throw std::invalid_argument("gcheap::set_finalizer: finalizer already set");
    if (stopping_) throw std::logic_error("gcheap::set_finalizer: the heap is being destroyed");
    if (!thread_.joinable()) {
        if (const int error = heap_.os_memory().start_thread(thread_, [this] { thread_main(); })) {
            throw std::system_error(error, std::generic_category(),
                                    "gcheap::set_finalizer: cannot start the finalizer thread");
        }
    }
    table_.emplace(addr, fn);
}

std::size_t Finalizers::resurrect_unreachable_locked(Marker& marker) {
    std::size_t found = 0;
    for (auto it = table_.begin(); it != table_.end();) {
        if (marker.is_marked(it->first)) {
            ++it;
            continue;
        }
        marker.grey(it->first);  // survives this cycle for its finalizer
        staged_.push_back({reinterpret_cast<void*>(it->first), it->second});
        it = table_.erase(it);
        ++found;
    }
    return found;
}

void Finalizers::run_staged() {
    {
        MutatorLock<> lock(mu_);
        if (staged_.empty()) return;
        while (!staged_.empty()) {
            queue_.push_back(staged_.front());
            staged_.pop_front();
        }
    }
    cv_.notify_all();
}

std::size_t Finalizers::registered() {
    MutatorLock<> lock(mu_);
    return table_.size();
}

std::uint64_t Finalizers::finalizers_run() const {
    MutatorLock<> lock(const_cast<std::mutex&>(mu_));
    return run_count_;
}

void Finalizers::wait_idle() {
    auto idle = [&] { return (queue_.empty() && !busy_) || stopping_; };
    if constexpr (kPollingLocks) {
        // A registered caller must not block inside pthread_cond_wait under
        // ThreadSanitizer (sync.hpp): poll instead.
        for (;;) {
            {
                MutatorLock<> lock(mu_);
                if (idle()) return;
            }
            poll_world_stop();
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    } else {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, idle);
    }
}

namespace {

// Overwrites the stack below the finalizer thread's loop. A world stop scans
// this thread from deep inside its wait (the signal handler runs there), so a
// stale copy of a finalized object's address left by the finalizer or by
// run_next() would keep the object alive, and a re-armed finalizer from running.
[[gnu::noinline]] void scrub_stack() {
    volatile char buffer[32 * 1024];
    std::memset(const_cast<char*>(buffer), 0, sizeof buffer);
    asm volatile("" : : "r"(buffer) : "memory");
}

}  // namespace

void Finalizers::thread_main() {
    for (;;) {
        {
            // Idle, the thread is not registered: a world stop neither waits
            // for it nor scans it, so it may block here however it likes.
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            busy_ = true;
        }
        // Registered before it takes an object off the queue (a root), so
        // that the object is never out of the collector's sight. Registering
        // needs a thread cache; if there is no memory for one, the queue
        // waits (its objects stay roots) and the thread tries again later.
        try {
            heap_.register_current_thread();
        } catch (const std::bad_alloc&) {
            if (!registration_failure_reported_) {
                std::fputs("gcheap: the finalizer thread cannot register (out of memory); finalizers wait\n", stderr);
                registration_failure_reported_ = true;
            }
            std::unique_lock<std::mutex> lock(mu_);
            busy_ = false;
            cv_.wait_for(lock, std::chrono::milliseconds(10), [&] { return stopping_; });
            continue;
        }
        while (run_next()) scrub_stack();
        // (A finalizer may have unregistered the thread itself: a misuse, tolerated.)
        if (heap_.is_current_thread_registered()) heap_.unregister_current_thread();
        // Idle only now that this stack is no root any more: a collection
        // right after wait_idle() must not find a stale copy of an object here.
        {
            std::lock_guard<std::mutex> lock(mu_);
            busy_ = false;
        }
        cv_.notify_all();
    }
}

// Not inlined: the object's address lives only in this frame and in
// registers this function restores on return, never in thread_main's.
[[gnu::noinline]] bool Finalizers::run_next() {
    Pending next{};
    {
        MutatorLock<> lock(mu_);
        if (stopping_ || queue_.empty()) return false;
        next = queue_.front();
        queue_.pop_front();
    }
    next.fn(next.object);  // the object stays alive: `next` is on this stack
    {
        MutatorLock<> lock(mu_);
        ++run_count_;
    }
    return true;
}

}  // namespace gcheap::detail
