// debug_fatal: the last words of a failed self-check; see debug.hpp.
#include "runtime/debug.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace gcheap::detail {

void debug_fatal(const char* report) {
    std::size_t left = std::strlen(report);
    while (left > 0) {
        const ssize_t n = ::write(STDERR_FILENO, report, left);
        if (n <= 0) break;
        report += n;
        left -= static_cast<std::size_t>(n);
    }
    std::abort();
}

}  // namespace gcheap::detail
