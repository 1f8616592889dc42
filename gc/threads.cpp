// Thread registry and signal-based stop-the-world; see threads.hpp.
#include "gc/threads.hpp"

#include "runtime/sanitizers.hpp"
#include "runtime/sync.hpp"
#include "runtime/thread_cache.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>


namespace gcheap::detail {

namespace {

// Signals are a process-wide resource, so the machinery that uses them is
// process-wide too: one world stop at a time, whichever heap asks.
struct WorldStop {
    std::mutex mu;  // held from stop to restart
    sem_t acks;
    std::atomic<std::uint64_t> resume_epoch{0};
    std::atomic<std::uint64_t> stop_count{0};
    int suspend_signal = 0;
    int resume_signal = 0;
};

WorldStop& world() {
    static WorldStop* const w = [] {
        auto* ws = new WorldStop;  // never destroyed: threads may park during exit
        sem_init(&ws->acks, 0, 0);
        return ws;
    }();
    return *w;
}

// The machine stack pointer. Not the address of a local: under
// AddressSanitizer's detect_stack_use_after_return, address-taken locals live
// in heap-allocated fake frames.
inline std::uintptr_t current_stack_pointer() {
    std::uintptr_t sp;
#if defined(__x86_64__)
    asm volatile("mov %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
    asm volatile("mov %0, sp" : "=r"(sp));
#else
    sp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
#endif
    return sp;
}

thread_local ThreadStopState tls_stop_state = {0, nullptr, {0}, 0};

// Records where this thread stopped, acknowledges, and waits for the resume
// epoch to move. Runs in a signal handler or with the resume signal blocked.
[[gnu::noinline]] void park_current_thread(const sigset_t& wait_mask) {
    WorldStop& w = world();
    const std::uint64_t requested = tls_stop_state.requested.load(std::memory_order_acquire);
    if (requested == tls_stop_state.parked) return;  // already parked for this stop
    tls_stop_state.parked = requested;
    const std::uint64_t epoch = w.resume_epoch.load(std::memory_order_acquire);
    __builtin_unwind_init();  // spill callee-saved registers into this frame
    tls_stop_state.stop_sp = current_stack_pointer();
    tls_stop_state.fake_stack = current_fake_stack();
    sem_post(&w.acks);
    while (w.resume_epoch.load(std::memory_order_acquire) == epoch) sigsuspend(&wait_mask);
}

sigset_t wait_mask_allowing_resume() {
    sigset_t mask;
    sigfillset(&mask);
    sigdelset(&mask, world().resume_signal);
    // Let the fatal synchronous signals through, so a crash elsewhere still kills us.
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTERM, SIGINT, SIGQUIT}) sigdelset(&mask, sig);
    return mask;
}

void on_suspend_signal(int, siginfo_t*, void*) {
    const int saved_errno = errno;
    if (tls_cache_slot.in_alloc_region != 0) {
        tls_cache_slot.suspend_pending = 1;  // the fast path parks on its way out
    } else {
        const sigset_t mask = wait_mask_allowing_resume();
        park_current_thread(mask);
    }
    errno = saved_errno;
}

void on_resume_signal(int, siginfo_t*, void*) {}

void install_signal_handlers() {
    static std::once_flag once;
    std::call_once(once, [] {
        WorldStop& w = world();
        // Real-time signals, away from those glibc, Boehm GC (SIGPWR/SIGXCPU)
        // and common runtimes use.
        w.suspend_signal = SIGRTMIN + 6;
        w.resume_signal = SIGRTMIN + 7;
        struct sigaction action;
        std::memset(&action, 0, sizeof action);
        action.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&action.sa_mask);
        sigaddset(&action.sa_mask, w.suspend_signal);
        sigaddset(&action.sa_mask, w.resume_signal);
        action.sa_sigaction = on_suspend_signal;
        if (sigaction(w.suspend_signal, &action, nullptr) != 0) {
            throw std::system_error(errno, std::generic_category(), "gcheap: installing the suspend signal handler");
        }
        action.sa_sigaction = on_resume_signal;
        if (sigaction(w.resume_signal, &action, nullptr) != 0) {
            throw std::system_error(errno, std::generic_category(), "gcheap: installing the resume signal handler");
        }
    });
}

}  // namespace

void* current_fake_stack() {
#ifdef GCHEAP_ASAN
    return __asan_get_current_fake_stack();
#else
    return nullptr;
#endif
}

void suspend_pending_thread() {
    tls_cache_slot.suspend_pending = 0;
    if (tls_stop_state.requested.load(std::memory_order_acquire) == tls_stop_state.parked) return;
    WorldStop& w = world();
    sigset_t block;
    sigset_t previous;
    sigemptyset(&block);
    sigaddset(&block, w.resume_signal);
    sigaddset(&block, w.suspend_signal);
    pthread_sigmask(SIG_BLOCK, &block, &previous);
    sigset_t wait_mask = previous;
    sigdelset(&wait_mask, w.resume_signal);
    park_current_thread(wait_mask);
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void current_stack_bounds(std::uintptr_t& lo, std::uintptr_t& hi) {
    pthread_attr_t attr;
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) {
        throw std::system_error(errno, std::generic_category(), "gcheap: reading the thread's stack bounds");
    }
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    lo = reinterpret_cast<std::uintptr_t>(addr);
    hi = lo + size;
}

[[gnu::noinline]] void with_registers_on_stack(void (*f)(std::uintptr_t sp, void* arg), void* arg) {
    __builtin_unwind_init();
    f(current_stack_pointer(), arg);
    asm volatile("" ::: "memory");  // keep this frame (and its spills) alive across the call
}

ThreadRegistry::ThreadRegistry() { install_signal_handlers(); }

ThreadRegistry::~ThreadRegistry() {
    std::lock_guard<std::mutex> lock(mu_);
    while (head_ != nullptr) {
        ThreadRecord* r = head_;
        head_ = r->next;
        delete r;
    }
}

ThreadRecord* ThreadRegistry::find_current_locked() const {
    for (ThreadRecord* r = head_; r != nullptr; r = r->next) {
        if (pthread_equal(r->thread, pthread_self())) return r;
    }
    return nullptr;
}

ThreadRecord* ThreadRegistry::add_current_thread(bool explicit_registration) {
    auto* record = new ThreadRecord;
    record->thread = pthread_self();
    record->stop_state = &tls_stop_state;
    record->explicit_registration = explicit_registration;
    try {
        current_stack_bounds(record->stack_lo, record->stack_hi);
    } catch (...) {
        delete record;
        throw;
    }
    MutatorLock<> lock(mu_);
    record->next = head_;
    if (head_ != nullptr) head_->prev = record;
    head_ = record;
    ++count_;
    return record;
}

void ThreadRegistry::remove(ThreadRecord* record) {
    MutatorLock<> lock(mu_);
    if (record->prev != nullptr) record->prev->next = record->next;
    else head_ = record->next;
    if (record->next != nullptr) record->next->prev = record->prev;
    --count_;
    delete record;
}

void ThreadRegistry::stop_the_world() {
    lock_for_mutator(mu_);
    WorldStop& w = world();
    lock_for_mutator(w.mu);
    const pthread_t self = pthread_self();
    const std::uint64_t stop = w.stop_count.fetch_add(1, std::memory_order_relaxed) + 1;
    std::size_t signalled = 0;
    for (ThreadRecord* r = head_; r != nullptr; r = r->next) {
        if (pthread_equal(r->thread, self)) continue;
        r->stop_state->requested.store(stop, std::memory_order_release);
        const int rc = pthread_kill(r->thread, w.suspend_signal);
        if (rc == 0) {
            ++signalled;
        } else {
            std::fprintf(stderr, "gcheap: cannot suspend a registered thread (%s); it must have exited unregistered\n",
                         std::strerror(rc));
            std::abort();
        }
    }
    for (std::size_t i = 0; i < signalled; ++i) {
        while (sem_wait(&w.acks) != 0 && errno == EINTR) {
        }
    }
}

void ThreadRegistry::start_the_world() {
    WorldStop& w = world();
    w.resume_epoch.fetch_add(1, std::memory_order_release);
    const pthread_t self = pthread_self();
    for (ThreadRecord* r = head_; r != nullptr; r = r->next) {
        if (!pthread_equal(r->thread, self)) pthread_kill(r->thread, w.resume_signal);
    }
    w.mu.unlock();
    mu_.unlock();
}

}  // namespace gcheap::detail
