// Thread registry and signal-based stop-the-world; see threads.hpp.
#include "gc/threads.hpp"

#include "gc/data_segments.hpp"

#include "runtime/sanitizers.hpp"
#include "runtime/sync.hpp"
#include "runtime/thread_cache.hpp"

#include <alloca.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
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

thread_local ThreadStopState tls_stop_state = {0, nullptr, {}, {0}, {0}};
thread_local std::uintptr_t tls_collection_entry_sp = 0;
thread_local AddressRange tls_own_stack;

// The alternate signal stack the calling thread is running on, or an empty range.
AddressRange current_altstack() {
    stack_t ss;
    if (sigaltstack(nullptr, &ss) != 0 || (ss.ss_flags & SS_ONSTACK) == 0) return {};
    const auto lo = reinterpret_cast<std::uintptr_t>(ss.ss_sp);
    return {lo, lo + ss.ss_size};
}

// stderr without stdio: the world may be stopped with a thread inside
// fprintf, holding stderr's lock.
void write_stderr(const char* text) {
    [[maybe_unused]] const auto n = ::write(STDERR_FILENO, text, std::strlen(text));
}

// Records where this thread stopped, acknowledges, and waits for the resume
// epoch to move. Runs in a signal handler or with the resume signal blocked.
[[gnu::noinline]] void park_current_thread(const sigset_t& wait_mask) {
    WorldStop& w = world();
    const std::uint64_t requested = tls_stop_state.requested.load(std::memory_order_acquire);
    if (requested == tls_stop_state.parked.load(std::memory_order_relaxed)) return;  // already parked for this stop
    tls_stop_state.parked.store(requested, std::memory_order_relaxed);
    int cancel_state = 0;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);  // sigsuspend is a cancellation point
    const std::uint64_t epoch = w.resume_epoch.load(std::memory_order_acquire);
    __builtin_unwind_init();  // spill callee-saved registers into this frame
    tls_stop_state.stop_sp = current_stack_pointer();
    tls_stop_state.fake_stack = current_fake_stack();
    tls_stop_state.altstack = current_altstack();  // sigaltstack() is async-signal-safe
    sem_post(&w.acks);
    while (w.resume_epoch.load(std::memory_order_acquire) == epoch) sigsuspend(&wait_mask);
    pthread_setcancelstate(cancel_state, nullptr);
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

void warn_if_replaced(const struct sigaction& previous, int signal) {
    const bool installed = (previous.sa_flags & SA_SIGINFO) != 0 ? previous.sa_sigaction != nullptr
                                                                  : previous.sa_handler != SIG_DFL;
    if (!installed) return;
    char text[200];
    std::snprintf(text, sizeof text,
                  "gcheap: replacing the program's handler of signal %d (SIGRTMIN+%d): gcheap uses SIGRTMIN+6 and "
                  "SIGRTMIN+7 to stop threads for collections\n",
                  signal, signal - SIGRTMIN);
    write_stderr(text);
}

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
        struct sigaction previous;
        action.sa_sigaction = on_suspend_signal;
        if (sigaction(w.suspend_signal, &action, &previous) != 0) {
            throw std::system_error(errno, std::generic_category(), "gcheap: installing the suspend signal handler");
        }
        warn_if_replaced(previous, w.suspend_signal);
        action.sa_sigaction = on_resume_signal;
        if (sigaction(w.resume_signal, &action, &previous) != 0) {
            throw std::system_error(errno, std::generic_category(), "gcheap: installing the resume signal handler");
        }
        warn_if_replaced(previous, w.resume_signal);
    });
}

// Both handlers must still be gcheap's: a replaced (or ignored) suspend or
// resume signal would stop the world forever.
void check_handlers_installed() {
    const WorldStop& w = world();
    const struct {
        int signal;
        void (*handler)(int, siginfo_t*, void*);
    } expected[] = {{w.suspend_signal, on_suspend_signal}, {w.resume_signal, on_resume_signal}};
    for (const auto& e : expected) {
        struct sigaction current;
        if (sigaction(e.signal, nullptr, &current) != 0) continue;
        if ((current.sa_flags & SA_SIGINFO) != 0 && current.sa_sigaction == e.handler) continue;
        char text[256];
        std::snprintf(text, sizeof text,
                      "gcheap: fatal: the handler of signal %d (SIGRTMIN+%d), which gcheap uses to stop threads for "
                      "collections, was replaced or set to ignore; collections cannot stop threads. Leave SIGRTMIN+6 "
                      "and SIGRTMIN+7 to gcheap.\n",
                      e.signal, e.signal - SIGRTMIN);
        write_stderr(text);
        std::abort();
    }
}

// "blocks signal N", from the thread's SigBlk mask; "" if it does not or
// the mask cannot be read. Uses system calls only: the world is half stopped.
const char* blocked_reason(pid_t tid, int signal, char* buffer, std::size_t size) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%d/status", static_cast<int>(tid));
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    char status[4096];
    const ssize_t n = ::read(fd, status, sizeof status - 1);
    ::close(fd);
    if (n <= 0) return "";
    status[n] = '\0';
    const char* line = std::strstr(status, "SigBlk:");
    if (line == nullptr) return "";
    const unsigned long long mask = std::strtoull(line + 7, nullptr, 16);
    if ((mask >> (signal - 1) & 1) == 0) return "";
    std::snprintf(buffer, size, ": it blocks signal %d (SIGRTMIN+%d), gcheap's suspend signal", signal,
                  signal - SIGRTMIN);
    return buffer;
}

}  // namespace

void* current_fake_stack() {
#ifdef GCHEAP_ASAN
    return __asan_get_current_fake_stack();
#else
    return nullptr;
#endif
}

StopSignalsAllowed::StopSignalsAllowed() {
    install_signal_handlers();  // the signal numbers
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, world().suspend_signal);
    sigaddset(&stop_signals, world().resume_signal);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, &previous_);
}

StopSignalsAllowed::~StopSignalsAllowed() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

void suspend_pending_thread() {
    tls_cache_slot.suspend_pending = 0;
    if (tls_stop_state.requested.load(std::memory_order_acquire) == tls_stop_state.parked.load(std::memory_order_relaxed)) return;
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

namespace {

AddressRange read_stack_bounds() {
    pthread_attr_t attr;
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) {
        throw std::system_error(errno, std::generic_category(), "gcheap: reading the thread's stack bounds");
    }
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    const auto lo = reinterpret_cast<std::uintptr_t>(addr);
    return {lo, lo + size};
}

}  // namespace

const AddressRange& current_thread_stack() {
    if (tls_own_stack.end == 0) tls_own_stack = read_stack_bounds();
    return tls_own_stack;
}

namespace {

// Sets the entry unless an outer one is running, then runs the body.
void enter_collection(void (*body)(void*), void* arg, std::uintptr_t sp) {
    if (tls_collection_entry_sp != 0) {
        body(arg);
        return;
    }
    tls_collection_entry_sp = sp;
    // The world stop's waits are cancellation points: a cancelled collector
    // would leave the world stopped. A cancel waits for the next one after.
    int cancel_state = 0;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    struct Reset {
        int cancel_state;
        ~Reset() {
            tls_collection_entry_sp = 0;
            pthread_setcancelstate(cancel_state, nullptr);
        }
    } reset{cancel_state};
    body(arg);
}

}  // namespace

// push_registers_and_run(fn, a, b) pushes every callee-saved register and
// calls fn(a, b, sp) with the stack pointer below the pushes (cppgc's
// PushAllRegistersAndIterateStack). Written in assembly so that its frame
// holds nothing but those registers and the return address: a compiled
// frame may keep unwritten padding, whose stale words would be roots.
extern "C" [[gnu::visibility("hidden")]] void gcheap_push_registers_and_run(
    void (*fn)(void (*)(void*), void*, std::uintptr_t), void (*a)(void*), void* b);

#if defined(__x86_64__)
asm(R"(
    .text
    .p2align 4
    .globl gcheap_push_registers_and_run
    .hidden gcheap_push_registers_and_run
    .type gcheap_push_registers_and_run, @function
gcheap_push_registers_and_run:
    .cfi_startproc
    endbr64                 # a landing pad under CET; a no-op elsewhere
    push %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    mov %rsp, %rbp
    .cfi_def_cfa_register %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    push $0                 # keeps %rsp 16-byte aligned for the call
    mov %rdi, %rax
    mov %rsi, %rdi
    mov %rdx, %rsi
    mov %rsp, %rdx
    call *%rax
    mov %rbp, %rsp          # the callee preserved the pushed registers
    pop %rbp
    .cfi_def_cfa %rsp, 8
    ret
    .cfi_endproc
    .size gcheap_push_registers_and_run, .-gcheap_push_registers_and_run
)");
#elif defined(__aarch64__)
asm(R"(
    .text
    .p2align 2
    .globl gcheap_push_registers_and_run
    .hidden gcheap_push_registers_and_run
    .type gcheap_push_registers_and_run, %function
gcheap_push_registers_and_run:
    .cfi_startproc
    stp x29, x30, [sp, #-96]!
    .cfi_def_cfa_offset 96
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    mov x29, sp
    stp x19, x20, [sp, #16]
    stp x21, x22, [sp, #32]
    stp x23, x24, [sp, #48]
    stp x25, x26, [sp, #64]
    stp x27, x28, [sp, #80]
    mov x3, x0
    mov x0, x1
    mov x1, x2
    mov x2, sp
    blr x3
    ldp x29, x30, [sp], #96
    .cfi_def_cfa_offset 0
    ret
    .cfi_endproc
    .size gcheap_push_registers_and_run, .-gcheap_push_registers_and_run
)");
#else
#error "gcheap: gcheap_push_registers_and_run has no implementation for this architecture"
#endif

void run_as_collection_entry(void (*body)(void*), void* arg) {
    gcheap_push_registers_and_run(enter_collection, body, arg);
}

std::uintptr_t collection_entry_sp() { return tls_collection_entry_sp; }

[[gnu::noinline]] void clear_stack_below(std::size_t bytes) {
    const AddressRange& own = current_thread_stack();
    const std::uintptr_t sp = current_stack_pointer();
    if (!own.contains(sp)) return;  // on a fiber or signal stack: its bounds are not ours to know
    constexpr std::size_t kMargin = 16384;  // for this frame, memset and a signal handler
    if (sp - own.begin < kMargin) return;
    bytes = std::min(bytes, sp - own.begin - kMargin);
    void* below = alloca(bytes);
    std::memset(below, 0, bytes);
    asm volatile("" : : "r"(below) : "memory");
}

ThreadRegistry::ThreadRegistry(bool scan_tls) : scan_tls_(scan_tls) { install_signal_handlers(); }

ThreadRegistry::~ThreadRegistry() {
    std::lock_guard<std::mutex> lock(mu_);
    while (head_ != nullptr) {
        ThreadRecord* r = head_;
        head_ = r->next;
        delete r;
    }
}

ThreadRecord* ThreadRegistry::add_current_thread(bool explicit_registration) {
    auto* record = new ThreadRecord;
    record->thread = pthread_self();
    record->tid = static_cast<pid_t>(::syscall(SYS_gettid));
    record->stop_state = &tls_stop_state;
    record->explicit_registration = explicit_registration;
    try {
        const AddressRange& stack = current_thread_stack();
        record->stack_lo = stack.begin;
        record->stack_hi = stack.end;
        if (scan_tls_) {
            current_thread_tls_ranges(record->tls);
            std::erase_if(record->tls, [&](const AddressRange& r) { return r.begin >= stack.begin && r.end <= stack.end; });
        }
    } catch (...) {
        delete record;
        throw;
    }
    MutatorLock<> lock(mu_);
    record->next = head_;
    if (head_ != nullptr) head_->prev = record;
    head_ = record;
    return record;
}

void ThreadRegistry::remove(ThreadRecord* record) {
    MutatorLock<> lock(mu_);
    if (record->prev != nullptr) record->prev->next = record->next;
    else head_ = record->next;
    if (record->next != nullptr) record->next->prev = record->prev;
    delete record;
}


void ThreadRegistry::add_stack(std::uintptr_t lo, std::uintptr_t hi) {
    if (lo >= hi) throw std::invalid_argument("gcheap::add_stack: empty or inverted stack " + describe_range(lo, hi));
    MutatorLock<> lock(mu_);
    auto at = std::lower_bound(stacks_.begin(), stacks_.end(), lo,
                               [](const AddressRange& r, std::uintptr_t a) { return r.begin < a; });
    const bool overlaps_next = at != stacks_.end() && at->begin < hi;
    const bool overlaps_previous = at != stacks_.begin() && std::prev(at)->end > lo;
    if (overlaps_next || overlaps_previous) {
        const AddressRange& other = overlaps_next ? *at : *std::prev(at);
        throw std::invalid_argument("gcheap::add_stack: " + describe_range(lo, hi) + " overlaps the registered stack " +
                                    describe_range(other.begin, other.end));
    }
    stacks_.insert(at, AddressRange{lo, hi});
}

void ThreadRegistry::remove_stack(std::uintptr_t lo, std::uintptr_t hi) {
    MutatorLock<> lock(mu_);
    auto at = std::find_if(stacks_.begin(), stacks_.end(),
                           [&](const AddressRange& r) { return r.begin == lo && r.end == hi; });
    if (at == stacks_.end()) {
        throw std::invalid_argument("gcheap::remove_stack: the stack " + describe_range(lo, hi) +
                                    " was never added (stacks are removed with the exact bounds they were added with)");
    }
    stacks_.erase(at);
}

std::size_t ThreadRegistry::stack_count() {
    MutatorLock<> lock(mu_);
    return stacks_.size();
}

const AddressRange* ThreadRegistry::stack_holding_locked(std::uintptr_t sp) const {
    auto at = std::upper_bound(stacks_.begin(), stacks_.end(), sp,
                               [](std::uintptr_t a, const AddressRange& r) { return a < r.begin; });
    if (at == stacks_.begin()) return nullptr;
    --at;
    // A stack pointer may equal the end of an empty stack: nothing pushed yet.
    return sp >= at->begin && sp <= at->end ? &*at : nullptr;
}

std::uint64_t ThreadRegistry::scan_thread_locked(const AddressRange& own, std::uintptr_t sp,
                                                 const AddressRange& altstack, void* fake_stack, StackVisitor visit,
                                                 void* context) const {
    if (sp >= own.begin && sp <= own.end) {
        visit(context, sp, own.end, fake_stack);
        return own.end - sp;
    }
    // Running elsewhere: the stack it stands on from sp, and all of its own.
    std::uintptr_t end = 0;
    if (const AddressRange* stack = stack_holding_locked(sp)) {
        end = stack->end;
    } else if (sp >= altstack.begin && sp <= altstack.end) {
        end = altstack.end;
    } else {
        end = mapping_end(sp, sp + (std::uintptr_t{1} << 30));
        static std::atomic<bool> warned{false};
        if (!warned.exchange(true, std::memory_order_relaxed)) {
            char text[256];
            std::snprintf(text, sizeof text,
                          "gcheap: a registered thread stopped on a stack gcheap does not know (sp %#lx); scanned "
                          "to the end of its mapping (%#lx). Register fiber stacks with gcheap::add_stack().\n",
                          static_cast<unsigned long>(sp), static_cast<unsigned long>(end));
            write_stderr(text);
        }
    }
    visit(context, sp, end, fake_stack);
    const std::uintptr_t own_lo = lowest_mapped(own.begin, own.end);
    visit(context, own_lo, own.end, nullptr);
    return (end - sp) + (own.end - own_lo);
}

std::uint64_t ThreadRegistry::scan_stacks_locked(std::uintptr_t own_sp, StackVisitor visit, void* context) const {
    const pthread_t self = pthread_self();
    std::uint64_t bytes = scan_thread_locked(tls_own_stack, own_sp, current_altstack(), current_fake_stack(), visit,
                                             context);
    auto stands_on = [&](const AddressRange& stack) {
        if (own_sp >= stack.begin && own_sp <= stack.end) return true;
        for (const ThreadRecord* r = head_; r != nullptr; r = r->next) {
            if (pthread_equal(r->thread, self)) continue;
            const std::uintptr_t sp = r->stop_state->stop_sp;
            if (sp >= stack.begin && sp <= stack.end) return true;
        }
        return false;
    };
    for (const ThreadRecord* r = head_; r != nullptr; r = r->next) {
        if (pthread_equal(r->thread, self)) continue;
        const ThreadStopState& stopped = *r->stop_state;
        bytes += scan_thread_locked(AddressRange{r->stack_lo, r->stack_hi}, stopped.stop_sp, stopped.altstack,
                                    stopped.fake_stack, visit, context);
    }
    for (const ThreadRecord* r = head_; r != nullptr; r = r->next) {
        for (const AddressRange& block : r->tls) {
            visit(context, block.begin, block.end, nullptr);
            bytes += block.bytes();
        }
    }
    // Suspended fibers: their frames may be anywhere in the stack.
    for (const AddressRange& stack : stacks_) {
        if (stands_on(stack)) continue;
        visit(context, stack.begin, stack.end, nullptr);
        bytes += stack.bytes();
    }
    return bytes;
}

void ThreadRegistry::stop_the_world() {
    lock_for_mutator(mu_);
    WorldStop& w = world();
    lock_for_mutator(w.mu);
    check_handlers_installed();
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
    std::size_t acked = 0;
    for (unsigned waited_s = 1; acked < signalled; ++waited_s) {
        timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 1;
        while (acked < signalled) {
            if (sem_timedwait(&w.acks, &deadline) == 0) ++acked;
            else if (errno != EINTR) break;  // a second without every thread parked
        }
        if (acked < signalled && (waited_s == 1 || waited_s % 10 == 0)) report_unstopped_locked(stop, waited_s);
    }
}

void ThreadRegistry::report_unstopped_locked(std::uint64_t stop, unsigned waited_s) const {
    const pthread_t self = pthread_self();
    for (const ThreadRecord* r = head_; r != nullptr; r = r->next) {
        if (pthread_equal(r->thread, self) || r->stop_state->parked.load(std::memory_order_relaxed) == stop) continue;
        char reason[128] = "";
        char text[400];
        std::snprintf(text, sizeof text,
                      "gcheap: the collector has waited %u s for registered thread %d to stop%s; it is not parked "
                      "(a thread that blocks or consumes gcheap's signals, or that ThreadSanitizer holds, cannot "
                      "be stopped)\n",
                      waited_s, static_cast<int>(r->tid),
                      blocked_reason(r->tid, world().suspend_signal, reason, sizeof reason));
        write_stderr(text);
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
