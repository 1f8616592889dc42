// Finalizers with Go's semantics (mfinal.go).
//
//   - set(obj, fn): obj must be the start of an allocated gcheap object (or,
//     as in Go, any byte of a tiny block); fn == nullptr clears; setting a
//     second finalizer throws, as Go's "finalizer already set" is fatal.
//   - While obj is registered, everything obj references is kept alive
//     (marked from obj's words) but obj itself is not, unless it is reachable.
//   - When a collection finds obj unreachable, it marks obj again (it survives
//     this cycle), removes the registration and queues fn(obj). A single
//     finalizer thread runs queued finalizers one at a time; it registers
//     with the heap (its stack is scanned) before it takes an object off the
//     queue and unregisters when the queue is empty, so that a world stop
//     never waits for it while it idles. Queued objects are roots until their
//     finalizer has run. obj is freed by a later cycle if it is
//     still unreachable then: finalizable objects need two cycles.
//   - Each finalizer runs at most once. Cycles through a finalizable object
//     keep it alive, as in Go.
// Locking: mutex() guards the table and the queue; the collector holds it
// from before the world stop until after the restart (registration mallocs).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace gcheap::detail {

class Heap;
class Marker;

using FinalizerFn = void (*)(void*);

class Finalizers {
public:
    explicit Finalizers(Heap& heap);
    ~Finalizers();
    Finalizers(const Finalizers&) = delete;
    Finalizers& operator=(const Finalizers&) = delete;

    void set(void* object, FinalizerFn fn);

    std::mutex& mutex() { return mu_; }
    /// World stopped: queued objects are roots; registered objects' words are
    /// scanned. M is the Marker, or the CheckMarker of GCHEAP_DEBUG=checkmark.
    template <class M>
    void mark_roots_locked(M& marker) {
        for (const Pending& p : staged_) marker.grey(reinterpret_cast<std::uintptr_t>(p.object));
        for (const Pending& p : queue_) marker.grey(reinterpret_cast<std::uintptr_t>(p.object));
        for (const auto& [object, fn] : table_) marker.scan_object_words(object);
    }
    /// World stopped, after marking: resurrects unreachable registered objects
    /// and moves them to the queue's staging area. Returns how many.
    std::size_t resurrect_unreachable_locked(Marker& marker);
    /// World running: hands staged finalizers to the finalizer thread.
    void run_staged();

    /// Stops and joins the finalizer thread; queued finalizers are dropped
    /// (as Go runs none at exit). The heap calls it first when it is destroyed.
    void stop();

    std::size_t registered();
    std::uint64_t finalizers_run() const;
    /// Blocks until every queued finalizer has run (for tests and free_os_memory).
    void wait_idle();

private:
    struct Pending {
        void* object;
        FinalizerFn fn;
    };
    void thread_main();
    /// Runs the next queued finalizer; false when the queue is empty or stopping.
    bool run_next();

    Heap& heap_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::unordered_map<std::uintptr_t, FinalizerFn> table_;
    std::deque<Pending> staged_;  // found unreachable, not yet handed over
    std::deque<Pending> queue_;   // waiting for the finalizer thread
    bool busy_ = false;  // the finalizer thread is registered and working through the queue
    bool stopping_ = false;
    bool registration_failure_reported_ = false;  // finalizer thread only
    std::uint64_t run_count_ = 0;
    std::thread thread_;
};

}  // namespace gcheap::detail
