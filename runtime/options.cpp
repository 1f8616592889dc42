// HeapOptions::from_environment: the GCHEAP_* variables, parsed from one table
// (Go's GOGC, GOMEMLIMIT and GODEBUG=gctrace).
#include <gcheap/options.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace gcheap {

namespace {

bool parse_int(const char* text, long long& out) {
    errno = 0;
    char* end = nullptr;
    out = std::strtoll(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

// Go's GOMEMLIMIT syntax: an integer with an optional B, KiB, MiB, GiB or TiB suffix.
bool parse_bytes(const char* text, std::int64_t& out) {
    errno = 0;
    char* end = nullptr;
    const long long value = std::strtoll(text, &end, 10);
    if (errno != 0 || end == text || value < 0) return false;
    const std::string_view suffix(end);
    int shift = -1;
    if (suffix.empty() || suffix == "B") shift = 0;
    else if (suffix == "KiB") shift = 10;
    else if (suffix == "MiB") shift = 20;
    else if (suffix == "GiB") shift = 30;
    else if (suffix == "TiB") shift = 40;
    if (shift < 0 || value > (std::numeric_limits<std::int64_t>::max() >> shift)) return false;
    out = static_cast<std::int64_t>(value) << shift;
    return true;
}

// "on"/"1" or "off"/"0".
bool parse_switch(const char* text, bool& out) {
    if (std::strcmp(text, "on") == 0 || std::strcmp(text, "1") == 0) out = true;
    else if (std::strcmp(text, "off") == 0 || std::strcmp(text, "0") == 0) out = false;
    else return false;
    return true;
}

void warn(const char* name, const char* value) {
    std::fprintf(stderr, "gcheap: ignoring %s=%s (not understood)\n", name, value);
}

}  // namespace

DebugOptions DebugOptions::parse(std::string_view spec) {
    DebugOptions debug;
    if (spec == "off") return debug;
    while (!spec.empty()) {
        const std::size_t comma = spec.find(',');
        const std::string_view item = spec.substr(0, comma);
        spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
        if (item.empty()) continue;
        const std::size_t equals = item.find('=');
        const std::string_view key = item.substr(0, equals);
        const std::string_view value = equals == std::string_view::npos ? std::string_view{} : item.substr(equals + 1);
        bool* flag = key == "checkmark" ? &debug.checkmark
                     : key == "clobberfree" ? &debug.clobberfree
                     : key == "verify" ? &debug.verify
                                        : nullptr;
        if (flag != nullptr && (value.empty() || value == "1" || value == "0")) {
            *flag = value != "0";
            continue;
        }
        long long n = 0;
        if (key == "torture" && equals != std::string_view::npos && parse_int(std::string(value).c_str(), n) &&
            n >= 0) {
            debug.torture = static_cast<std::uint64_t>(n);
            continue;
        }
        throw std::invalid_argument("gcheap: unknown debug mode '" + std::string(item) +
                                    "' (known: checkmark, clobberfree, verify, torture=N)");
    }
    return debug;
}

std::string DebugOptions::to_string() const {
    std::string spec;
    auto add = [&spec](const std::string& item) { spec += (spec.empty() ? "" : ",") + item; };
    if (checkmark) add("checkmark");
    if (clobberfree) add("clobberfree");
    if (verify) add("verify");
    if (torture != 0) add("torture=" + std::to_string(torture));
    return spec;
}

DebugOptions DebugOptions::from_environment() {
    const char* value = std::getenv("GCHEAP_DEBUG");
    if (value == nullptr) return {};
    try {
        return parse(value);
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "gcheap: ignoring GCHEAP_DEBUG=%s (%s)\n", value, e.what());
        return {};
    }
}

DebugOptions DebugOptions::merged_with(const DebugOptions& other) const {
    DebugOptions both;
    both.checkmark = checkmark || other.checkmark;
    both.clobberfree = clobberfree || other.clobberfree;
    both.verify = verify || other.verify;
    both.torture = torture == 0 ? other.torture : other.torture == 0 ? torture : std::min(torture, other.torture);
    return both;
}

HeapOptions HeapOptions::from_environment() {
    HeapOptions options;
    struct Variable {
        const char* name;
        void (*apply)(HeapOptions&, const char* name, const char* value);
    };
    static const Variable kVariables[] = {
        {"GCHEAP_GOGC",
         [](HeapOptions& o, const char* name, const char* value) {
             long long n = 0;
             if (std::strcmp(value, "off") == 0) o.gc_percent = -1;
             else if (parse_int(value, n) && n >= -1 && n <= 1000000) o.gc_percent = static_cast<int>(n);
             else warn(name, value);
         }},
        {"GCHEAP_MEMLIMIT",
         [](HeapOptions& o, const char* name, const char* value) {
             if (std::strcmp(value, "off") == 0) return;
             if (!parse_bytes(value, o.memory_limit)) warn(name, value);
         }},
        {"GCHEAP_GCTRACE",
         [](HeapOptions& o, const char* name, const char* value) {
             long long n = 0;
             if (parse_int(value, n) && n >= 0 && n <= 2) o.gctrace = static_cast<int>(n);
             else warn(name, value);
         }},
        {"GCHEAP_SCAVENGER",
         [](HeapOptions& o, const char* name, const char* value) {
             if (!parse_switch(value, o.background_scavenger)) warn(name, value);
         }},
        {"GCHEAP_SWEEPER",
         [](HeapOptions& o, const char* name, const char* value) {
             if (!parse_switch(value, o.background_sweeper)) warn(name, value);
         }},
        {"GCHEAP_SCAN_GLOBALS",
         [](HeapOptions& o, const char* name, const char* value) {
             if (!parse_switch(value, o.scan_globals)) warn(name, value);
         }},
        {"GCHEAP_MARK_THREADS",
         [](HeapOptions& o, const char* name, const char* value) {
             long long n = 0;
             if (parse_int(value, n) && n >= 0 && n <= 1024) o.mark_threads = static_cast<unsigned>(n);
             else warn(name, value);
         }},
        {"GCHEAP_MEMPROFILERATE",
         [](HeapOptions& o, const char* name, const char* value) {
             long long n = 0;
             if (parse_int(value, n) && n >= 0 && n <= std::numeric_limits<int>::max()) {
                 o.mem_profile_rate = static_cast<int>(n);
             } else {
                 warn(name, value);
             }
         }},
    };
    for (const Variable& v : kVariables) {
        if (const char* value = std::getenv(v.name)) v.apply(options, v.name, value);
    }
    return options;  // GCHEAP_DEBUG: every Heap merges it itself (DebugOptions::from_environment)
}

}  // namespace gcheap
