// Root-scanning benchmark: what scanning the program's writable data segments
// (.data/.bss of the executable and of every loaded object, plus static TLS;
// HeapOptions::scan_globals, GCHEAP_SCAN_GLOBALS) adds to a full collection's
// pause, as a function of the size of .bss. Results and the method are in
// docs/performance.md ("Roots: data segments, entry-point stack scanning").
//
// A plain main() program like gc_bench: every measurement runs in a fresh
// child process (this executable, re-run with --only), so that each child has
// exactly the data segments of its configuration and the kernel's page state
// (zero page or faulted-in pages) of no other run.
//
// Usage:
//   roots_bench [--reps=N] [--collections=K] [--sizes=0,1,16,64] [--touch=no|yes|both] [--markers=M]
//       Runs every configuration (.bss size x touched x scan_globals on/off)
//       N times (default 5), repetitions interleaved round-robin, and prints
//       Markdown tables of medians with the min-max range, and the cost of
//       scanning per MiB of data segment.
//   roots_bench --only --bss-mib=S --scan=on|off [--touch] [--collections=K] [--markers=M] [--gctrace]
//               [--parallel-min-bytes=B]
//       One measurement in this process; prints one "@result key=value ..." line.
//       --parallel-min-bytes sets HeapOptions::parallel_mark_min_bytes (an
//       experiment: the marker decides on helpers from the previous cycle's
//       marked bytes, which do not count root bytes).
//
// How a program with an S MiB .bss is made: the child dlopen()s an ELF shared
// object that it writes itself (make_bss_object below), whose only loadable
// segment is writable, S MiB long and zero-filled: 392 bytes of headers and
// dynamic section from the file, the rest p_memsz beyond p_filesz, exactly
// what a compiler emits for `static char a[S << 20];`. dl_iterate_phdr reports
// it like the executable's own segment, so the collector scans it by the same
// code (DataSegments, one msync() probe, Marker::scan_root_range) as the
// executable's .bss. Why not static arrays in this file: every bench/*.cpp is
// one program, and one program has one .bss size. Building this file with
// -DROOTS_BENCH_STATIC_MIB=S adds a real static array of S MiB to the
// executable instead (run it with --sizes=0); docs/performance.md gives the
// command and compares the two.
//
// Untouched (default): the pages of the segment are never written, so they
// read as the kernel's shared zero page (the first collection faults them in
// read-only; later ones scan the same physical page over and over, from
// cache). Touched (--touch): every word past the first page is written with
// a small integer (not a pointer into the heap) before the heap is built, so
// the pages are private, resident memory and scanning reads real memory.
//
// The heap: a fresh gcheap::detail::Heap (gc_percent -1, no background
// sweeper or scavenger: the scavenger thread, woken at the end of every
// cycle, preempts the collecting thread on a 2-vCPU machine and puts
// milliseconds of off-CPU time into collect() at random) holding a 10^4-node list of 16-byte nodes (156 KiB live), rooted
// in a global registered with the heap's RootSet (so scan_globals=off keeps
// it). One untimed warm-up collection, then K (default 20) timed ones.
// "pause" is each cycle's PauseNs from read_mem_stats() (gate closed ->
// world restarted), "collect" the wall time of collect(), which also holds
// the DataSegments refresh before the stop, sweeping and the stack clearing
// after the cycle. The child also reports what DataSegments sees (refresh(),
// count(), bytes()), the cost of one cached refresh() and of the msync()
// probes of one collection, each timed in a loop outside any collection.
#include <gcheap/gcheap.hpp>

#include "gc/collector.hpp"
#include "gc/data_segments.hpp"
#include "runtime/heap.hpp"
#include "runtime/os_memory.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <time.h>
#include <unistd.h>

namespace {

std::uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// A field of /proc/self/status in bytes ("VmRSS"), 0 if absent.
std::uint64_t proc_status_bytes(const char* field) {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return 0;
    char line[256];
    std::uint64_t kib = 0;
    const std::size_t len = std::strlen(field);
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
            kib = std::strtoull(line + len + 1, nullptr, 10);
            break;
        }
    }
    std::fclose(f);
    return kib * 1024;
}

constexpr double kMiB = 1024.0 * 1024.0;

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

class Result {
public:
    void add(const char* key, double value) { values_.emplace_back(key, value); }
    void print() const {
        std::string line = "@result";
        char buf[64];
        for (const auto& [key, value] : values_) {
            std::snprintf(buf, sizeof buf, " %s=%.9g", key.c_str(), value);
            line += buf;
        }
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
    }

private:
    std::vector<std::pair<std::string, double>> values_;
};

// ---------------------------------------------------------------------------
// A loaded object with an S MiB .bss
// ---------------------------------------------------------------------------

#if defined(__x86_64__)
constexpr Elf64_Half kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr Elf64_Half kMachine = EM_AARCH64;
#else
#error "roots_bench: make_bss_object() knows x86-64 and AArch64 only"
#endif

/// The image of a minimal ELF64 shared object: one PT_LOAD, RW, p_filesz =
/// the headers, p_memsz = `bytes` (the zero-filled rest is its .bss), a
/// PT_DYNAMIC with an empty symbol table, and PT_GNU_STACK (without it the
/// loader would make the stack executable).
std::vector<unsigned char> make_bss_object(std::size_t bytes) {
    struct Image {
        Elf64_Ehdr ehdr;
        Elf64_Phdr phdr[3];
        Elf64_Dyn dyn[7];
        Elf64_Sym sym[1];
        Elf32_Word hash[4];  // nbucket 1, nchain 1, bucket[0] = 0, chain[0] = 0
        char str[8];
    };
    Image image;
    std::memset(&image, 0, sizeof image);
    const auto at = [&](const void* field) {
        return static_cast<Elf64_Addr>(static_cast<const unsigned char*>(field) -
                                       reinterpret_cast<const unsigned char*>(&image));
    };
    Elf64_Ehdr& e = image.ehdr;
    std::memcpy(e.e_ident, ELFMAG, SELFMAG);
    e.e_ident[EI_CLASS] = ELFCLASS64;
    e.e_ident[EI_DATA] = ELFDATA2LSB;
    e.e_ident[EI_VERSION] = EV_CURRENT;
    e.e_ident[EI_OSABI] = ELFOSABI_SYSV;
    e.e_type = ET_DYN;
    e.e_machine = kMachine;
    e.e_version = EV_CURRENT;
    e.e_phoff = at(image.phdr);
    e.e_ehsize = sizeof(Elf64_Ehdr);
    e.e_phentsize = sizeof(Elf64_Phdr);
    e.e_phnum = 3;
    e.e_shentsize = sizeof(Elf64_Shdr);

    Elf64_Phdr& load = image.phdr[0];
    load.p_type = PT_LOAD;
    load.p_flags = PF_R | PF_W;
    load.p_offset = 0;
    load.p_vaddr = load.p_paddr = 0;
    load.p_filesz = sizeof image;
    load.p_memsz = std::max<std::size_t>(bytes, sizeof image);
    load.p_align = 0x10000;  // any page size up to 64 KiB

    Elf64_Phdr& dynamic = image.phdr[1];
    dynamic.p_type = PT_DYNAMIC;
    dynamic.p_flags = PF_R | PF_W;
    dynamic.p_offset = dynamic.p_vaddr = dynamic.p_paddr = at(image.dyn);
    dynamic.p_filesz = dynamic.p_memsz = sizeof image.dyn;
    dynamic.p_align = 8;

    Elf64_Phdr& stack = image.phdr[2];
    stack.p_type = PT_GNU_STACK;
    stack.p_flags = PF_R | PF_W;
    stack.p_align = 16;

    image.hash[0] = 1;
    image.hash[1] = 1;
    const Elf64_Dyn dyn[] = {
        {DT_HASH, {at(image.hash)}},     {DT_STRTAB, {at(image.str)}},
        {DT_SYMTAB, {at(image.sym)}},    {DT_STRSZ, {sizeof image.str}},
        {DT_SYMENT, {sizeof(Elf64_Sym)}}, {DT_NULL, {0}},
        {DT_NULL, {0}},
    };
    std::memcpy(image.dyn, dyn, sizeof dyn);

    std::vector<unsigned char> out(sizeof image);
    std::memcpy(out.data(), &image, sizeof image);
    return out;
}

/// dlopen()s a fresh object whose writable segment is `bytes` long; returns
/// that segment's [begin, end), or an empty range on failure (reported).
gcheap::detail::AddressRange load_bss_object(std::size_t bytes) {
    const char* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/roots_bench_bss_XXXXXX";
    const int fd = mkstemp(path.data());
    if (fd < 0) {
        std::perror("roots_bench: mkstemp");
        return {};
    }
    const std::vector<unsigned char> image = make_bss_object(bytes);
    const bool written = ::write(fd, image.data(), image.size()) == static_cast<ssize_t>(image.size());
    ::close(fd);
    void* handle = written ? dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
    ::unlink(path.c_str());
    if (handle == nullptr) {
        std::fprintf(stderr, "roots_bench: dlopen of the %zu-byte .bss object failed: %s\n", bytes,
                     written ? dlerror() : "write failed");
        return {};
    }
    link_map* map = nullptr;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) return {};
    // Never closed: the segment stays for the life of the process.
    return {static_cast<std::uintptr_t>(map->l_addr), static_cast<std::uintptr_t>(map->l_addr) + bytes};
}

#ifdef ROOTS_BENCH_STATIC_MIB
// A real static array, in this executable's .bss (see the opening comment).
constexpr std::size_t kStaticMib = ROOTS_BENCH_STATIC_MIB;
std::uintptr_t g_static_bss[(kStaticMib << 20) / sizeof(std::uintptr_t)];
#else
constexpr std::size_t kStaticMib = 0;
#endif

/// Writes small integers (never heap addresses) into every word of
/// [begin, end): the pages become private and resident.
void touch(std::uintptr_t begin, std::uintptr_t end) {
    auto* p = reinterpret_cast<std::uintptr_t*>(begin);
    auto* q = reinterpret_cast<std::uintptr_t*>(end);
    for (std::uintptr_t i = 1; p < q; ++p, ++i) *static_cast<volatile std::uintptr_t*>(p) = i;
}

// ---------------------------------------------------------------------------
// One measurement
// ---------------------------------------------------------------------------

struct ListNode {
    ListNode* next;
    std::uintptr_t value;
};
constexpr std::size_t kListNodes = 10000;

void* volatile g_root = nullptr;

int run_one(std::size_t bss_mib, bool scan, bool touched, int collections, unsigned markers, bool gctrace,
            long long parallel_min_bytes) {
    std::size_t bss_bytes = 0;
    if (bss_mib > 0) {
        const gcheap::detail::AddressRange range = load_bss_object(bss_mib << 20);
        if (range.begin == 0) return 1;
        bss_bytes = range.bytes();
        // The first page holds the object's headers and dynamic section.
        if (touched) touch(range.begin + 4096, range.end);
    }
#ifdef ROOTS_BENCH_STATIC_MIB
    bss_bytes += sizeof g_static_bss;
    if (touched) {
        touch(reinterpret_cast<std::uintptr_t>(g_static_bss),
              reinterpret_cast<std::uintptr_t>(g_static_bss + std::size(g_static_bss)));
    }
#endif

    // What the collector will scan (its own DataSegments sees the same objects).
    gcheap::detail::DataSegments segments;
    segments.refresh();
    std::size_t largest = 0;
    segments.for_each([&](std::uintptr_t b, std::uintptr_t e) { largest = std::max<std::size_t>(largest, e - b); });

    // Costs outside the pause, in loops: a cached refresh() (the collector
    // runs one before each stop) and one collection's msync() probes.
    constexpr int kLoops = 200;
    std::uint64_t t0 = now_ns();
    for (int i = 0; i < kLoops; ++i) segments.refresh();
    const double refresh_ns = static_cast<double>(now_ns() - t0) / kLoops;
    bool all_mapped = true;
    t0 = now_ns();
    for (int i = 0; i < kLoops; ++i) {
        segments.for_each([&](std::uintptr_t b, std::uintptr_t e) { all_mapped &= gcheap::detail::is_mapped(b, e); });
    }
    const double probes_ns = static_cast<double>(now_ns() - t0) / kLoops;

    gcheap::HeapOptions options;
    options.gc_percent = -1;
    options.background_sweeper = false;
    options.background_scavenger = false;  // its wake-up at each cycle's end preempts this thread (2 vCPUs)
    options.mark_threads = markers;
    options.scan_globals = scan;
    options.gctrace = gctrace ? 1 : 0;
    if (parallel_min_bytes >= 0) options.parallel_mark_min_bytes = static_cast<std::size_t>(parallel_min_bytes);
    auto heap = std::make_unique<gcheap::detail::Heap>(options);
    heap->collector().roots().add(const_cast<void**>(&g_root), const_cast<void**>(&g_root) + 1);

    ListNode* head = nullptr;
    for (std::size_t i = 0; i < kListNodes; ++i) {
        auto* node = static_cast<ListNode*>(heap->alloc(sizeof(ListNode), false));
        node->next = head;
        node->value = kListNodes - 1 - i;
        head = node;
    }
    g_root = head;
    head = nullptr;

    std::vector<double> pause_ns, collect_ns;
    double first_pause_ns = 0;
    gcheap::MemStats stats;
    for (int k = -1; k < collections; ++k) {  // k = -1: warm-up (faults the zero pages in)
        const std::uint64_t c0 = now_ns();
        heap->collector().collect();
        const std::uint64_t c1 = now_ns();
        stats = heap->read_mem_stats();
        const double pause = static_cast<double>(stats.PauseNs[(stats.NumGC + 255) % 256]);
        if (k < 0) {
            first_pause_ns = pause;
            continue;
        }
        pause_ns.push_back(pause);
        collect_ns.push_back(static_cast<double>(c1 - c0));
    }
    std::size_t n = 0;
    for (auto* node = static_cast<ListNode*>(g_root); node != nullptr; node = node->next, ++n) {
        if (node->value != n) {
            std::fprintf(stderr, "roots_bench: the list was freed\n");
            return 1;
        }
    }
    if (n != kListNodes) return 1;

    Result r;
    r.add("bss_mib", static_cast<double>(bss_mib));
    r.add("bss_bytes", static_cast<double>(bss_bytes));
    r.add("scan", scan ? 1 : 0);
    r.add("touched", touched ? 1 : 0);
    r.add("markers", static_cast<double>(heap->collector().marker().mark_threads()));
    r.add("segments", static_cast<double>(segments.count()));
    r.add("segment_mib", static_cast<double>(segments.bytes()) / kMiB);
    r.add("largest_mib", static_cast<double>(largest) / kMiB);
    r.add("all_mapped", all_mapped ? 1 : 0);
    r.add("refresh_us", refresh_ns / 1e3);
    r.add("probes_us", probes_ns / 1e3);
    r.add("first_pause_us", first_pause_ns / 1e3);
    r.add("pause_us", median(pause_ns) / 1e3);
    r.add("pause_min_us", *std::min_element(pause_ns.begin(), pause_ns.end()) / 1e3);
    r.add("pause_max_us", *std::max_element(pause_ns.begin(), pause_ns.end()) / 1e3);
    r.add("collect_us", median(collect_ns) / 1e3);
    r.add("heap_alloc_kib", static_cast<double>(stats.HeapAlloc) / 1024);
    r.add("rss_mib", static_cast<double>(proc_status_bytes("VmRSS")) / kMiB);
    r.print();
    heap->collector().roots().remove(const_cast<void**>(&g_root), const_cast<void**>(&g_root) + 1);
    g_root = nullptr;
    return 0;
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

using Values = std::map<std::string, double>;

std::string self_path() {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "roots_bench";
    buf[n] = '\0';
    return buf;
}

Values run_child(const std::string& exe, const std::string& args) {
    const std::string command = "'" + exe + "' " + args;
    std::FILE* pipe = popen(command.c_str(), "r");
    Values values;
    if (pipe == nullptr) return values;
    char line[4096];
    while (std::fgets(line, sizeof line, pipe) != nullptr) {
        if (std::strncmp(line, "@result", 7) != 0) continue;
        char* save = nullptr;
        for (char* tok = strtok_r(line + 7, " \n", &save); tok != nullptr; tok = strtok_r(nullptr, " \n", &save)) {
            char* eq = std::strchr(tok, '=');
            if (eq == nullptr) continue;
            *eq = '\0';
            values[tok] = std::strtod(eq + 1, nullptr);
        }
    }
    const int status = pclose(pipe);
    if (status != 0) {
        std::fprintf(stderr, "roots_bench: child failed (status %d): %s\n", status, command.c_str());
        values.clear();
    }
    return values;
}

std::string cell(const std::vector<double>& v, const char* fmt, bool range = true) {
    if (v.empty()) return "–";
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, median(v));
    std::string out = buf;
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    if (range && v.size() > 1 && *lo != *hi) {
        out += " (";
        std::snprintf(buf, sizeof buf, fmt, *lo);
        out += buf;
        out += "–";
        std::snprintf(buf, sizeof buf, fmt, *hi);
        out += buf;
        out += ")";
    }
    return out;
}

std::string load_average() {
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) != 3) return "?";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", load[0], load[1], load[2]);
    return buf;
}

struct Config {
    std::size_t mib;
    bool touched;
    bool scan;
};

int run_driver(int reps, int collections, const std::vector<std::size_t>& sizes, const std::vector<bool>& touches,
               unsigned markers) {
    const std::string exe = self_path();
    std::vector<Config> configs;
    for (bool touched : touches) {
        for (std::size_t mib : sizes) {
            if (touched && mib + kStaticMib == 0) continue;  // nothing to touch
            for (bool scan : {true, false}) configs.push_back({mib, touched, scan});
        }
    }
    const auto key = [](const Config& c) { return std::to_string(c.mib) + (c.touched ? "t" : "u") + (c.scan ? "1" : "0"); };
    std::map<std::string, std::vector<Values>> results;  // per config, one Values per repetition
    const std::string load_before = load_average();
    const std::uint64_t t0 = now_ns();
    for (int rep = 0; rep < reps; ++rep) {
        for (const Config& c : configs) {
            std::fprintf(stderr, "rep %d/%d: .bss %zu MiB %s, scan_globals %s\n", rep + 1, reps, c.mib,
                         c.touched ? "touched" : "untouched", c.scan ? "on" : "off");
            const std::string args = "--only --bss-mib=" + std::to_string(c.mib) + " --scan=" + (c.scan ? "on" : "off") +
                                     (c.touched ? " --touch" : "") + " --collections=" + std::to_string(collections) +
                                     " --markers=" + std::to_string(markers);
            results[key(c)].push_back(run_child(exe, args));
        }
    }
    const auto column = [&](const Config& c, const char* k) {
        std::vector<double> v;
        for (const Values& values : results[key(c)]) {
            if (const auto it = values.find(k); it != values.end()) v.push_back(it->second);
        }
        return v;
    };

    std::printf("Medians of %d processes, min–max in parentheses; %d timed collections per process.\n", reps,
                collections);
    std::printf("Load average before: %s, after: %s; %.0f s in all.\n\n", load_before.c_str(), load_average().c_str(),
                static_cast<double>(now_ns() - t0) / 1e9);
    std::printf("| .bss MiB | pages | scan_globals | ranges | scanned MiB | markers | pause µs | max pause µs | "
                "first pause µs | collect() µs | cached refresh() µs | msync probes µs |\n");
    std::printf("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const Config& c : configs) {
        std::printf("| %zu | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.mib,
                    c.mib + kStaticMib == 0 ? "–" : c.touched ? "touched" : "zero page", c.scan ? "on" : "off",
                    cell(column(c, "segments"), "%.0f", false).c_str(),
                    c.scan ? cell(column(c, "segment_mib"), "%.2f", false).c_str() : "–",
                    cell(column(c, "markers"), "%.0f", false).c_str(), cell(column(c, "pause_us"), "%.0f").c_str(),
                    cell(column(c, "pause_max_us"), "%.0f").c_str(), cell(column(c, "first_pause_us"), "%.0f").c_str(),
                    cell(column(c, "collect_us"), "%.0f").c_str(),
                    c.scan ? cell(column(c, "refresh_us"), "%.2f").c_str() : "–",
                    c.scan ? cell(column(c, "probes_us"), "%.1f").c_str() : "–");
    }

    // Cost of scanning: pause(on) - pause(off) of the same repetition (run
    // back to back), per collection, and per MiB of data segment scanned.
    std::printf("\nCost of scan_globals per collection: pause(on) − pause(off) of the same repetition, medians "
                "with min–max.\n\n");
    std::printf("| .bss MiB | pages | scanned MiB | Δ pause µs | µs per MiB scanned | Δ collect() µs |\n");
    std::printf("|---:|---|---:|---:|---:|---:|\n");
    for (const Config& c : configs) {
        if (!c.scan) continue;
        const std::vector<Values>& on = results[key(c)];
        const std::vector<Values>& off = results[key({c.mib, c.touched, false})];
        std::vector<double> delta, per_mib, delta_collect;
        for (std::size_t i = 0; i < std::min(on.size(), off.size()); ++i) {
            if (on[i].empty() || off[i].empty()) continue;
            const double d = on[i].at("pause_us") - off[i].at("pause_us");
            delta.push_back(d);
            per_mib.push_back(d / on[i].at("segment_mib"));
            delta_collect.push_back(on[i].at("collect_us") - off[i].at("collect_us"));
        }
        std::printf("| %zu | %s | %s | %s | %s | %s |\n", c.mib, c.mib + kStaticMib == 0 ? "–" : c.touched ? "touched" : "zero page",
                    cell(column(c, "segment_mib"), "%.2f", false).c_str(), cell(delta, "%.0f").c_str(),
                    cell(per_mib, "%.1f").c_str(), cell(delta_collect, "%.0f").c_str());
    }
    std::fflush(stdout);
    return 0;
}

std::vector<std::size_t> parse_sizes(const std::string& text) {
    std::vector<std::size_t> sizes;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const std::size_t comma = text.find(',', pos);
        const std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (!item.empty()) sizes.push_back(std::strtoull(item.c_str(), nullptr, 10));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return sizes;
}

int usage() {
    std::fprintf(stderr,
                 "usage: roots_bench [--reps=N] [--collections=K] [--sizes=0,1,16,64] [--touch=no|yes|both] "
                 "[--markers=M]\n"
                 "       roots_bench --only --bss-mib=S --scan=on|off [--touch] [--collections=K] [--markers=M] "
                 "[--gctrace] [--parallel-min-bytes=B]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    bool only = false;
    bool touched = false;
    bool gctrace = false;
    std::string scan = "on";
    std::string touch_mode = "both";
    std::vector<std::size_t> sizes = {0, 1, 16, 64};
    std::size_t bss_mib = 0;
    int reps = 5;
    int collections = 20;
    unsigned markers = 0;
    long long parallel_min_bytes = -1;  // HeapOptions' default
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        std::string text;
        const auto value = [&](std::string_view prefix) {
            if (arg.substr(0, prefix.size()) != prefix) return false;
            text = std::string(arg.substr(prefix.size()));
            return true;
        };
        if (arg == "--only") {
            only = true;
        } else if (arg == "--touch") {
            touched = true;
        } else if (arg == "--gctrace") {
            gctrace = true;
        } else if (value("--scan=")) {
            scan = text;
        } else if (value("--touch=")) {
            touch_mode = text;
        } else if (value("--sizes=")) {
            sizes = parse_sizes(text);
        } else if (value("--bss-mib=")) {
            bss_mib = std::strtoull(text.c_str(), nullptr, 10);
        } else if (value("--reps=")) {
            reps = std::max(1, std::atoi(text.c_str()));
        } else if (value("--collections=")) {
            collections = std::max(1, std::atoi(text.c_str()));
        } else if (value("--parallel-min-bytes=")) {
            parallel_min_bytes = std::atoll(text.c_str());
        } else if (value("--markers=")) {
            markers = static_cast<unsigned>(std::max(0, std::atoi(text.c_str())));
        } else {
            return usage();
        }
    }
    if (scan != "on" && scan != "off") return usage();
    if (only) return run_one(bss_mib, scan == "on", touched, collections, markers, gctrace, parallel_min_bytes);
    std::vector<bool> touches;
    if (touch_mode == "no" || touch_mode == "both") touches.push_back(false);
    if (touch_mode == "yes" || touch_mode == "both") touches.push_back(true);
    if (touches.empty() || sizes.empty()) return usage();
    return run_driver(reps, collections, sizes, touches, markers);
}
