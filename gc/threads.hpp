// Thread registry and stop-the-world by signals (Boehm GC's pthread_stop_world,
// Go's stopTheWorld in spirit).
//
// Every thread whose stack may hold pointers into a heap is registered with
// that heap's ThreadRegistry: automatically on its first allocation, or
// explicitly (gcheap::ThreadScope, register_current_thread()). To stop the
// world, the collector sends each other registered thread the suspend signal.
// The handler runs on that thread wherever it is — computing, blocked in a
// system call, waiting for a lock — records its stack pointer (the signal
// frame below it holds every register, callee-saved ones included), posts an
// acknowledgement and waits in sigsuspend() until the collector bumps the
// resume epoch and sends the resume signal. Nothing a thread does can delay a
// collection beyond the delivery of one signal, with one exception below.
//
// Allocation regions: a thread interrupted inside the lock-free allocation
// fast path could be half way through updating its cached span, which the
// collector is about to flush. The fast path therefore marks itself with
// ThreadCacheSlot::in_alloc_region (a TLS store, no atomic); the handler, seeing
// it, only sets suspend_pending and returns, and the fast path suspends the
// thread itself on the way out (a few instructions later). Go achieves the
// same by disabling preemption in mallocgc.
//
// Where a stopped thread's frames are (scan_stacks_locked): normally on its
// own stack, from the stopped stack pointer up. A thread can also be running
// on another stack: an alternate signal stack (sigaltstack, SA_ONSTACK), or
// a fiber or coroutine stack that its library registered with add_stack().
// Then the stack it stands on is scanned from its stack pointer to that
// stack's end, and its own stack is scanned whole (its lowest mapped page up):
// the frames it left there are suspended, not dead, and where they end is
// not known. A stack pointer on a stack nobody registered is scanned to the
// end of its mapping, with a warning; a registered thread is never skipped.
// Registered stacks that no thread stands on (suspended fibers) are scanned
// whole. A thread's static TLS blocks (thread_local variables, read at
// registration, data_segments.hpp) are scanned too where they lie outside its
// stack: glibc puts other threads' TLS at the top of their stack mappings,
// so this adds the main thread's.
//
// The collecting thread scans its own stack from the stack pointer of its
// collection entry (run_as_collection_entry(): collect(), free_os_memory(),
// the allocation slow path that triggers a cycle), where its callee-saved
// registers are spilled, not from inside the collector: the collector's own
// frames are large and partly unwritten, and the stale words of the
// program's earlier calls that show through them would be roots.
//
// A stop never hangs silently: a thread that has not parked within a
// second is reported on stderr — its kernel id, and whether it blocks the
// suspend signal (read from /proc/self/task/<tid>/status) — and again every
// ten seconds while the stop waits. A suspend handler that the program
// replaced is a fatal error with that message, checked before each stop; a
// handler the program had installed before gcheap's is reported when gcheap
// replaces it. Cancellation is disabled while a thread is parked and while a
// collection runs (run_as_collection_entry): their waits are cancellation
// points, and unwinding out of a stopped world or a signal handler would
// leave it stopped.
//
// Invariants:
//   (R1) while the world is stopped, every registered thread other than the
//        collector is parked in suspend_current_thread(), outside any
//        allocation region and outside every allocator lock (the collector
//        closed the allocator gate before stopping the world);
//   (R2) a ThreadRecord is in the registry from registration until
//        unregistration or thread exit, never while its thread is gone.
// Locking: mu_ guards the registry; the collector holds it from before the
// stop until after the restart, so registration waits for a cycle to end.
//
// Under ThreadSanitizer, signals are delivered at the target's next
// intercepted call; a thread spinning without any library call then delays
// the stop until it makes one (a documented limitation of TSan builds only).
#pragma once

#include <pthread.h>
#include <sys/types.h>
#include <semaphore.h>
#include <signal.h>

#include "runtime/os_memory.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace gcheap::detail {

/// Per-thread suspension state written by the suspended thread itself.
struct ThreadStopState {
    std::uintptr_t stop_sp;  // stack pointer when parked (covers the saved registers)
    void* fake_stack;        // AddressSanitizer's fake stack, when there is one
    AddressRange altstack;   // the alternate signal stack it parked on, if any
    // Stops are numbered. The collector sets `requested` before it signals the
    // thread; the thread parks once per number, so a signal that arrives late
    // (or a cooperative check that beat it) never parks it twice.
    std::atomic<std::uint64_t> requested;
    std::atomic<std::uint64_t> parked;  // read by the collector's report of threads that do not park
};

struct ThreadRecord {
    pthread_t thread{};
    pid_t tid = 0;  // the kernel's id, for reports and /proc/self/task
    ThreadStopState* stop_state = nullptr;  // the thread's thread_local state
    std::uintptr_t stack_lo = 0;  // lowest address of the stack mapping
    std::uintptr_t stack_hi = 0;  // one past the highest (stacks grow down)
    std::vector<AddressRange> tls;  // its TLS blocks outside its stack (HeapOptions::scan_globals)
    bool explicit_registration = false;
    ThreadRecord* next = nullptr;
    ThreadRecord* prev = nullptr;
};

class ThreadRegistry {
public:
    /// With `scan_tls`, each thread's static TLS blocks are scanned with its stack.
    explicit ThreadRegistry(bool scan_tls);
    ~ThreadRegistry();
    ThreadRegistry(const ThreadRegistry&) = delete;
    ThreadRegistry& operator=(const ThreadRegistry&) = delete;

    /// Registers the calling thread; returns its record (never null; throws
    /// std::bad_alloc or std::system_error).
    ThreadRecord* add_current_thread(bool explicit_registration);
    /// Removes a record of the calling thread (or of a thread that is exiting).
    void remove(ThreadRecord* record);

    /// Stops every registered thread but the caller. Returns with mu_ held.
    void stop_the_world();
    /// Restarts the threads stopped by stop_the_world() and releases mu_.
    void start_the_world();

    /// While the world is stopped: visit each registered thread's record
    /// (the caller's included; its stop_state is not filled in).
    template <class F>
    void for_each_locked(F&& f) const {
        for (const ThreadRecord* r = head_; r != nullptr; r = r->next) f(*r);
    }
    std::mutex& mutex() { return mu_; }

    /// gcheap::add_stack: [lo, hi) is a stack that registered threads may
    /// run on (a fiber's). Throws std::invalid_argument if lo >= hi or if it
    /// overlaps a registered stack.
    void add_stack(std::uintptr_t lo, std::uintptr_t hi);
    /// Removes the stack registered with exactly these bounds; throws
    /// std::invalid_argument, naming it, if there is none.
    void remove_stack(std::uintptr_t lo, std::uintptr_t hi);
    std::size_t stack_count();

    using StackVisitor = void (*)(void* context, std::uintptr_t lo, std::uintptr_t hi, void* fake_stack);
    /// While the world is stopped: calls visit() for every stack range to
    /// scan (the header comment says which), the calling thread's from
    /// `own_sp`. Returns the bytes visited.
    std::uint64_t scan_stacks_locked(std::uintptr_t own_sp, StackVisitor visit, void* context) const;

private:
    /// Writes each registered thread that has not parked for `stop` to stderr.
    void report_unstopped_locked(std::uint64_t stop, unsigned waited_s) const;
    /// The registered stack holding `sp`, or nullptr.
    const AddressRange* stack_holding_locked(std::uintptr_t sp) const;
    /// Visits the ranges of one thread that stopped at `sp`; `own` is its stack.
    std::uint64_t scan_thread_locked(const AddressRange& own, std::uintptr_t sp, const AddressRange& altstack,
                                     void* fake_stack, StackVisitor visit, void* context) const;

    const bool scan_tls_;
    std::mutex mu_;
    ThreadRecord* head_ = nullptr;
    std::vector<AddressRange> stacks_;  // add_stack(), sorted by begin, disjoint
};

/// Called by the allocation fast path when a suspend request arrived inside
/// an allocation region, and by polling lock waits (runtime/sync.hpp): parks
/// the thread if a world stop has asked it to and it has not parked for it yet.
void suspend_pending_thread();

/// Unblocks the suspend and resume signals in the calling thread for its
/// lifetime, restoring the mask after. For paths that wait for the
/// collector's locks with signals blocked, such as thread exit after a
/// cancellation (glibc runs key destructors with every signal blocked then):
/// blocked, a world stop could never park them while they wait.
class StopSignalsAllowed {
public:
    StopSignalsAllowed();
    ~StopSignalsAllowed();
    StopSignalsAllowed(const StopSignalsAllowed&) = delete;
    StopSignalsAllowed& operator=(const StopSignalsAllowed&) = delete;

private:
    sigset_t previous_;
};

/// Runs body(arg) as a collection entry: pushes the callee-saved registers
/// in a frame that holds nothing else (assembly: a compiled frame may keep
/// unwritten padding) and records its stack pointer as where collections
/// run inside body() scan the calling thread's stack from. The outermost
/// entry wins (a finalizer that calls collect() keeps the finalizer
/// thread's). Callers tail-call it, so that no frame of theirs lies between.
void run_as_collection_entry(void (*body)(void*), void* arg);
/// The stack pointer recorded by this thread's outermost running
/// run_as_collection_entry(), or 0 outside one.
std::uintptr_t collection_entry_sp();

/// Zeroes up to `bytes` of the calling thread's stack below its current
/// frame (Boehm's GC_clear_stack), within its own stack's bounds: what a
/// collection leaves there must not show through the unwritten slots of
/// later frames.
void clear_stack_below(std::size_t bytes);

/// AddressSanitizer's fake stack of the calling thread (nullptr without one).
void* current_fake_stack();

/// Stack bounds of the calling thread, read once per thread (the first call
/// may allocate: call it before stopping the world).
const AddressRange& current_thread_stack();

}  // namespace gcheap::detail
