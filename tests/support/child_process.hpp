// Runs one hidden test case of this test executable in a child process and
// collects its exit status and output: the way to test code paths that abort
// (a failed GCHEAP_DEBUG check) or change the whole process (setrlimit).
//
// A child test is a TEST_CASE tagged "[.child]" (hidden: CTest discovery and
// plain runs skip it) that starts with GCHEAP_CHILD_ONLY(), so that it does
// nothing unless run_child_test() started it. In the child, SIGABRT gets its
// default action back: Catch's handler for it is not async-signal-safe
// (ThreadSanitizer reports it), and the parent wants to see the abort itself.
#pragma once

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace gcheap::test {

struct ChildResult {
    bool exited = false;  // normal exit, with exit_code
    int exit_code = -1;
    int signal = 0;       // killed by this signal, if not exited
    std::string output;   // stdout and stderr, interleaved
};

inline constexpr const char* kChildEnv = "GCHEAP_TEST_CHILD";

#define GCHEAP_CHILD_ONLY()                                   \
    do {                                                      \
        if (std::getenv(::gcheap::test::kChildEnv) == nullptr) \
            return;                                           \
        std::signal(SIGABRT, SIG_DFL);                        \
    } while (false)

/// Runs the program `exe` with `args` and with `extra_env` ("NAME=value"
/// entries) added to the environment; waits for it and returns what it did.
inline ChildResult run_process(const std::string& exe, const std::vector<std::string>& args,
                               const std::vector<std::string>& extra_env = {}) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);

    std::vector<std::string> env_strings(extra_env.begin(), extra_env.end());
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> arg_strings{exe};
    arg_strings.insert(arg_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : arg_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    pid_t pid = -1;
    const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        throw std::runtime_error("posix_spawn failed");
    }
    ChildResult result;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n > 0) result.output.append(buffer, static_cast<std::size_t>(n));
        else if (n == 0 || errno != EINTR) break;
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exited = WIFEXITED(status);
    result.exit_code = result.exited ? WEXITSTATUS(status) : -1;
    result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return result;
}

/// Runs the test case `name` of /proc/self/exe with `extra_env` ("NAME=value"
/// entries) added to the environment.
inline ChildResult run_child_test(const std::string& name, const std::vector<std::string>& extra_env = {}) {
    std::vector<std::string> env{std::string(kChildEnv) + "=1"};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    return run_process("/proc/self/exe", {name}, env);
}

}  // namespace gcheap::test
