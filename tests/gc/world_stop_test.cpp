// The world stop as a process lives it (gc/threads.hpp): a thread the
// collector cannot stop is reported instead of a silent hang, a replaced
// suspend handler is a clear fatal error, a handler the program installed
// first is reported, and cancelling a thread that collects or is parked
// leaves the heap working. Cases that hang or abort by design run in child
// processes (tests/support/child_process.hpp).
#include "runtime/sanitizers.hpp"
#include "tests/support/child_process.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

using gcheap::test::run_child_test;

namespace {

void churn(int count) {
    for (int i = 0; i < count; ++i) std::memset(gcheap::alloc(64), 0x11, 64);
}

}  // namespace

TEST_CASE("world stop child: a thread that blocks every signal", "[.child]") {
    GCHEAP_CHILD_ONLY();
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    std::atomic<bool> blocked{false};
    std::thread server([&] {
        // The usual sigwait-server set-up: every signal blocked, then a blocking call.
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        gcheap::register_current_thread();
        blocked.store(true);
        char byte = 0;
        [[maybe_unused]] const ssize_t n = read(fds[0], &byte, 1);
        // Unblocked, the pending suspend signal parks the thread at once.
        pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
        gcheap::unregister_current_thread();
    });
    while (!blocked.load()) sched_yield();
    // A time bound is the point: the report is due within a second; the
    // server is released after two, and the collection then completes.
    std::thread release([&] {
        sleep(2);
        [[maybe_unused]] const ssize_t n = write(fds[1], "x", 1);
    });
    churn(1000);
    gcheap::collect();
    std::printf("collect finished\n");
    std::fflush(stdout);
    server.join();
    release.join();
}

TEST_CASE("world stop: a thread that blocks gcheap's signals is reported within a second", "[world-stop][signal]") {
    const gcheap::test::ChildResult run = run_child_test("world stop child: a thread that blocks every signal");
    INFO(run.output);
    CHECK(run.exited);
    CHECK(run.output.find("has waited 1 s for registered thread") != std::string::npos);
    CHECK(run.output.find("it blocks signal") != std::string::npos);
    CHECK(run.output.find("collect finished") != std::string::npos);
}

TEST_CASE("world stop child: the suspend handler replaced", "[.child]") {
    GCHEAP_CHILD_ONLY();
    churn(10);  // the heap, and its handlers, exist
    signal(SIGRTMIN + 6, SIG_IGN);
    gcheap::collect();
    std::printf("collect returned\n");
}

TEST_CASE("world stop: a replaced suspend handler is a clear fatal error and no hang", "[world-stop][signal]") {
    const gcheap::test::ChildResult run = run_child_test("world stop child: the suspend handler replaced");
    INFO(run.output);
    CHECK(run.signal == SIGABRT);
    CHECK(run.output.find("was replaced or set to ignore") != std::string::npos);
    CHECK(run.output.find("collect returned") == std::string::npos);
}

namespace {
void program_handler(int) {}
}  // namespace

TEST_CASE("world stop child: a handler installed before gcheap", "[.child]") {
    GCHEAP_CHILD_ONLY();
    signal(SIGRTMIN + 6, program_handler);
    churn(10);
    gcheap::collect();
    std::printf("collect returned\n");
}

TEST_CASE("world stop: a handler the program installed first is reported when gcheap replaces it",
          "[world-stop][signal]") {
    const gcheap::test::ChildResult run = run_child_test("world stop child: a handler installed before gcheap");
    INFO(run.output);
    CHECK(run.exited);
    CHECK(run.exit_code == 0);
    CHECK(run.output.find("replacing the program's handler of signal") != std::string::npos);
    CHECK(run.output.find("collect returned") != std::string::npos);
}

namespace {

std::atomic<int> g_collections{0};

void* collect_until_cancelled(void*) {
    gcheap::register_current_thread();
    for (;;) {
        churn(100);
        gcheap::collect();
        g_collections.fetch_add(1);
        pthread_testcancel();
    }
    return nullptr;
}

void* sleep_until_cancelled(void*) {
    gcheap::register_current_thread();
    for (;;) {
#ifdef GCHEAP_TSAN
        // glibc acts on a cancel inside a blocking call from its signal
        // handler, and the thread's exit then frees memory "inside a signal"
        // for ThreadSanitizer: cancel at pthread_testcancel() only.
        int state = 0;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
        usleep(100);
        pthread_setcancelstate(state, nullptr);
        pthread_testcancel();
#else
        usleep(100);  // a cancellation point, interrupted by every stop
#endif
    }
    return nullptr;
}

}  // namespace

TEST_CASE("world stop: cancelling a thread inside collect() or parked leaves the heap working",
          "[world-stop][cancel]") {
    for (int round = 0; round < 5; ++round) {
        pthread_t collector;
        pthread_t sleeper;
        REQUIRE(pthread_create(&sleeper, nullptr, sleep_until_cancelled, nullptr) == 0);
        REQUIRE(pthread_create(&collector, nullptr, collect_until_cancelled, nullptr) == 0);
        const int start = g_collections.load();
        // usleep, not sched_yield: ThreadSanitizer delivers the collector's
        // signal to this thread only at calls it intercepts.
        while (g_collections.load() < start + 3) usleep(50);
        // Both are cancelled mid-stride: the collector anywhere in a cycle,
        // the sleeper possibly parked in a world stop.
        REQUIRE(pthread_cancel(sleeper) == 0);
        REQUIRE(pthread_cancel(collector) == 0);
        // Before, the join hung, or the process ended in std::terminate.
        REQUIRE(pthread_join(collector, nullptr) == 0);
        REQUIRE(pthread_join(sleeper, nullptr) == 0);
    }
    // A cancelled thread's registration ended with it: collections go on.
    churn(1000);
    gcheap::collect();
    CHECK(gcheap::read_mem_stats().NumGC >= 15u);
}
