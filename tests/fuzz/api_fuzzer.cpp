// api_fuzzer: libFuzzer target that decodes its input into a sequence of
// gcheap API calls on a fresh Heap, mirrors the object graph with the oracle
// (tests/support/oracle.hpp), and after every call checks the mirror exactly
// (every reachable object allocated, intact, with the right pointer fields,
// never finalized), heap.verify() and the MemStats identities. Any mismatch
// prints what went wrong and aborts, which libFuzzer reports as a crash.
//
// Input format (tests/fuzz/make_corpus.py writes inputs in it):
//   byte 0      heap options: bits 0-1 GOGC (off, 10, 50, 100), bit 2 two
//               mark threads instead of one
//   then ops    one opcode byte (taken modulo kOpCount) and its argument
//               bytes; a missing byte reads as 0; the input ends the program
// The opcodes and their arguments are listed at `enum Op` below.
//
// Environment:
//   GCHEAP_FUZZ_TRACE=1  print each decoded operation to stderr (for crash files)
//   GCHEAP_FUZZ_PLANT=1  plant a bug: every collect clears the mark bit of one
//                        reachable object (the collector's after-mark test hook);
//                        the oracle must catch it and the run must abort with
//                        "oracle: planted bug caught"
//
// Everything runs in this process and is deterministic per input but for the
// moment the finalizer thread runs a finalizer (which only affects what a
// failing run reports).
#include "tests/support/oracle.hpp"

#include <gcheap/gcheap.hpp>

#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using gcheap::HeapOptions;
using gcheap::detail::Heap;
using namespace gcheap::test::oracle;

constexpr std::uint32_t kBlocks = 4;      // root blocks; 0 and 1 start registered
constexpr std::uint32_t kBlockWords = 8;  // words per root block
constexpr std::uint32_t kMaxEdges = 6;
constexpr std::size_t kMaxOps = 512;

// Opcodes (byte % kOpCount) and their argument bytes.
enum Op : std::uint8_t {
    kAlloc,           // kind, size, nedges, dest, edge targets (nedges bytes), offset
    kLink,            // dest, target, offset
    kClear,           // dest
    kCollect,         //
    kRelease,         // (release_free_pages)
    kSetFinalizer,    // node
    kClearFinalizer,  // node
    kRootAdd,         // block
    kRootRemove,      // block
    kRewrite,         // node
    kHop,             // count: the next count % 8 + 1 ops run on another thread
    kGarbage,         // count, size
    kOpCount
};

const char* const kOpNames[kOpCount] = {"alloc",    "link",     "clear", "collect", "release", "set_finalizer",
                                        "clear_finalizer", "root_add", "root_remove", "rewrite", "hop", "garbage"};

class Reader {
public:
    Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    bool done() const { return pos_ >= size_; }
    std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && v[0] != '\0' && v[0] != '0';
}

const bool g_trace = env_flag("GCHEAP_FUZZ_TRACE");
const bool g_plant = env_flag("GCHEAP_FUZZ_PLANT");

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "oracle: FAILURE: %s%s", what.c_str(), what.ends_with('\n') ? "" : "\n");
    std::fflush(stderr);
    std::abort();
}

class Program {
public:
    Program(Heap& heap, FinalizedLog& log) : heap_(heap), oracle_(heap, log, 0) {
        for (std::uint32_t b = 0; b < kBlocks; ++b) oracle_.add_root_block(kBlockWords, b < 2);
    }

    void run(Reader& in) {
        while (!in.done() && ops_ < kMaxOps) step(in, /*may_hop=*/true);
    }

private:
    // A live node picked by one byte (null when there is none, or for 0 when allow_null).
    std::uint64_t pick(std::uint8_t b, bool allow_null) {
        const auto& live = oracle_.live();
        if (live.empty()) return 0;
        if (allow_null) {
            if (b == 0) return 0;
            return live[(b - 1u) % live.size()];
        }
        return live[b % live.size()];
    }

    // A slot picked by one byte: the top bit chooses a root block word, else an
    // edge of a live node (falling back to a root block word).
    Slot pick_slot(std::uint8_t b) {
        if ((b & 0x80) == 0) {
            const auto& live = oracle_.live();
            for (std::size_t k = 0; k < live.size() && k < 8; ++k) {
                const Node* n = oracle_.find(live[(b + k) % live.size()]);
                if (!n->edges.empty()) return Slot{n->id, 0, static_cast<std::uint32_t>(b % n->edges.size())};
            }
        }
        return Slot{0, (b >> 3) % kBlocks, b % kBlockWords};
    }

    static std::uint32_t pick_offset(std::uint8_t b, std::uint32_t size) {
        if (b < 192 || size <= 1) return 0;
        return static_cast<std::uint32_t>((std::uint64_t{b - 192u} * 997u) % size);
    }

    void trace(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
        if (!g_trace) return;
        va_list args;
        va_start(args, fmt);
        std::fprintf(stderr, "op %zu: ", ops_);
        std::vfprintf(stderr, fmt, args);
        std::fputc('\n', stderr);
        va_end(args);
    }

    void step(Reader& in, bool may_hop) {
        const auto op = static_cast<Op>(in.byte() % kOpCount);
        ++ops_;
        switch (op) {
            case kAlloc: alloc(in); break;
            case kLink: {
                const Slot dest = pick_slot(in.byte());
                const std::uint64_t target = pick(in.byte(), true);
                const std::uint8_t ob = in.byte();
                const std::uint32_t offset = target == 0 ? 0 : pick_offset(ob, oracle_.find(target)->size);
                trace("link node %llx[%u] / block %u[%u] := %llx+%u", ull(dest.node), dest.index, dest.block,
                      dest.index, ull(target), offset);
                oracle_.set(dest, Edge{target, offset});
                break;
            }
            case kClear: {
                const Slot dest = pick_slot(in.byte());
                trace("clear node %llx[%u] / block %u[%u]", ull(dest.node), dest.index, dest.block, dest.index);
                oracle_.set(dest, Edge{});
                break;
            }
            case kCollect: collect(); break;
            case kRelease:
                trace("release_free_pages");
                heap_.release_free_pages();
                break;
            case kSetFinalizer: {
                const std::uint64_t id = pick(in.byte(), false);
                trace("set_finalizer %llx", ull(id));
                if (id != 0) set_finalizer(id);
                break;
            }
            case kClearFinalizer: {
                const std::uint64_t id = pick(in.byte(), false);
                trace("clear_finalizer %llx", ull(id));
                if (id != 0) oracle_.clear_finalizer(id);
                break;
            }
            case kRootAdd: {
                const std::uint32_t b = in.byte() % kBlocks;
                trace("root_add block %u", b);
                if (!oracle_.block_registered(b)) {
                    // Its words may point at objects freed while it was not a
                    // root: start it empty.
                    for (std::uint32_t i = 0; i < kBlockWords; ++i) oracle_.set(Slot{0, b, i}, Edge{});
                    oracle_.set_block_registered(b, true);
                }
                break;
            }
            case kRootRemove: {
                const std::uint32_t b = in.byte() % kBlocks;
                trace("root_remove block %u", b);
                oracle_.set_block_registered(b, false);
                break;
            }
            case kRewrite: {
                const std::uint64_t id = pick(in.byte(), false);
                trace("rewrite %llx", ull(id));
                if (id != 0) oracle_.rewrite(id);
                break;
            }
            case kHop: {
                const int count = in.byte() % 8 + 1;
                if (!may_hop) {
                    trace("hop (nested: ignored)");
                    break;
                }
                trace("hop: %d ops on another thread", count);
                std::exception_ptr error;
                std::thread t([&] {
                    try {
                        heap_.register_current_thread();
                        for (int i = 0; i < count && !in.done(); ++i) step(in, false);
                        heap_.unregister_current_thread();
                    } catch (...) {
                        error = std::current_exception();
                    }
                });
                t.join();
                if (error) std::rethrow_exception(error);
                break;
            }
            case kGarbage: {
                const int count = in.byte() % 16 + 1;
                const std::size_t size = std::size_t{in.byte()} * 131 + 1;
                trace("garbage %d x %zu bytes", count, size);
                for (int i = 0; i < count; ++i) {
                    auto* p = static_cast<unsigned char*>(heap_.alloc(size, i % 2 == 0));
                    std::memset(p, 0x5A, std::min<std::size_t>(size, 64));
                    gcheap::keep_alive(p);
                }
                break;
            }
            case kOpCount: break;
        }
        check(op);
    }

    void alloc(Reader& in) {
        const std::uint8_t kind = in.byte();
        const std::uint8_t sb = in.byte();
        const bool noscan = (kind & 4) != 0;
        std::size_t size = 0;
        switch (kind % 4) {
            case 0: size = 1 + sb % 15; break;                                     // tiny (when noscan)
            case 1: size = 16 + std::size_t{sb} * 8; break;                        // small
            case 2: size = 2048 + std::size_t{sb} * 120; break;                    // up to 32 KiB
            default: size = 32 * 1024 + 1 + std::size_t{sb} * 700; break;          // large
        }
        const std::uint32_t want = in.byte() % (kMaxEdges + 1);
        const std::uint32_t nedges = noscan ? 0 : std::min(want, Oracle::max_edges(size));
        const Slot dest = pick_slot(in.byte());
        std::vector<Edge> edges(nedges);
        for (auto& e : edges) e.target = pick(in.byte(), true);
        const std::uint32_t offset = pick_offset(in.byte(), static_cast<std::uint32_t>(size));
        trace("alloc %zu bytes %s, %u edges, into node %llx[%u] / block %u[%u] at +%u", size,
              noscan ? "noscan" : "scan", nedges, ull(dest.node), dest.index, dest.block, dest.index, offset);
        oracle_.create(dest, size, noscan, edges, offset);
    }

    void set_finalizer(std::uint64_t id) { oracle_.set_finalizer(id); }

    void collect() {
        std::uint64_t victim = 0;
        if (g_plant) {
            victim = oracle_.pick_victim(ops_);
            if (victim != 0) planter_.arm(heap_, oracle_.find(victim)->addr);
        }
        trace("collect%s", victim != 0 ? " (planting a lost object)" : "");
        heap_.collector().collect();
        if (victim != 0) {
            planter_.disarm(heap_);
            if (planter_.cleared()) {
                planted_ = victim;
                planted_what_ = oracle_.describe(*oracle_.find(victim));
                std::fprintf(stderr, "oracle: planted a lost object: cleared the mark bit of %s\n",
                             planted_what_.c_str());
            }
        }
    }

    void check(Op op) {
        const std::string where = "after op " + std::to_string(ops_) + " (" + kOpNames[op] + ")";
        std::string problem = oracle_.check(true, where);
        if (problem.empty()) {
            if (const char* p = heap_.verify()) problem = where + ": heap.verify(): " + p;
        }
        if (problem.empty()) {
            if (std::string p = check_mem_stats(heap_); !p.empty()) problem = where + ": " + p;
        }
        if (problem.empty()) return;
        if (planted_ != 0 && problem.find("id=" + hex(planted_) + " ") != std::string::npos) {
            std::fprintf(stderr, "oracle: planted bug caught: the lost %s was reported\n", planted_what_.c_str());
        }
        die(problem);
    }

    static unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

    Heap& heap_;
    Oracle oracle_;
    LostObjectPlanter planter_;
    std::uint64_t planted_ = 0;
    std::string planted_what_;
    std::size_t ops_ = 0;
};

void run_input(const std::uint8_t* data, std::size_t size) {
    Reader in(data, size);
    const std::uint8_t config = in.byte();
    HeapOptions options;
    static constexpr int kGogc[4] = {-1, 10, 50, 100};
    options.gc_percent = kGogc[config & 3];
    options.mark_threads = (config & 4) != 0 ? 2 : 1;
    options.parallel_mark_min_bytes = 0;
    options.background_sweeper = false;    // nothing runs in the heap but the program
    options.background_scavenger = false;
    FinalizedLog log;  // outlives the heap, whose destructor may run finalizers
    auto heap = std::make_unique<Heap>(options);
    {
        Program program(*heap, log);
        program.run(in);
    }
    if (heap->is_current_thread_registered()) heap->unregister_current_thread();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        run_input(data, size);
    } catch (const std::exception& e) {
        die(std::string("the fuzz program threw: ") + e.what());
    }
    return 0;
}
