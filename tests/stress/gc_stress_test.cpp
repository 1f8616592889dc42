// Multi-threaded collector stress test (issue: "≥ 4 mutator threads building
// and dropping random object graphs whose contents are checksummed, with
// collections from any thread; runs clean in normal, ThreadSanitizer and
// AddressSanitizer builds and finds no lost or corrupted object").
//
// Every mutator thread owns a random graph of Nodes in a fresh heap, reachable
// only through gcheap memory (a root array of Refs) and the thread's own stack.
// A Ref is a pointer plus the id the pointee must carry, so a node that was
// freed and reused shows up as an id mismatch. Each node has a payload — a
// separate object (scanned or noscan, tiny, small or large) or inline at the
// end of the node — reached through an interior pointer; its bytes are a pure
// function of (id, version), except for a leading run of Refs to other nodes in
// scanned payloads, and the whole payload is hashed into the node's header.
//
// Threads randomly create nodes, link and unlink them, replace payloads, drop
// subgraphs, allocate stack-only garbage bursts, read MemStats, collect
// explicitly, and pass frozen (immutable) subgraphs to each other through a
// gcheap-allocated mailbox, while the pacer triggers collections from
// allocating threads. They verify their whole graph periodically; the main
// thread verifies everything once more at the end, including that each node
// and payload is still an allocated object, and that dropping everything lets
// the heap empty out.
//
// GCHEAP_STRESS_SECONDS sets the duration of the first test (the second runs
// half as long); GCHEAP_STRESS_SEED changes the seeds; GCHEAP_STRESS_GCTRACE=1
// prints a line per cycle.
#include "gc/collector.hpp"
#include "runtime/heap.hpp"
#include "tests/support/heap_fixture.hpp"

#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "runtime/sanitizers.hpp"
#ifdef GCHEAP_TSAN
#define GCHEAP_STRESS_TSAN 1
#endif
#ifdef GCHEAP_ASAN
#define GCHEAP_STRESS_ASAN 1
#endif

using namespace gcheap::detail;
using gcheap::HeapOptions;

namespace {

#if defined(GCHEAP_STRESS_TSAN)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif
#if defined(GCHEAP_STRESS_ASAN)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

constexpr int kFanout = 4;
constexpr std::size_t kRootSlots = 128;      // per mutator
constexpr std::size_t kChurnRootSlots = 16;  // per short-lived churn thread
constexpr std::size_t kMailboxSlots = 32;
constexpr int kMaxMutators = 16;
constexpr std::size_t kBurstMax = 32;

// Sanitized builds run everything several times slower: keep the live graph
// and the verification passes proportionally smaller.
constexpr std::size_t kMaxLiveNodes = kThreadSanitizer ? 2000 : kAddressSanitizer ? 4000 : 8000;
constexpr std::uint64_t kMaxLivePayload = std::uint64_t{kThreadSanitizer ? 2 : 4} << 20;
constexpr std::uint64_t kVerifyEvery = kThreadSanitizer ? 2000 : 5000;
constexpr std::uint64_t kMaxOpsPerThread = kThreadSanitizer ? 400000 : kAddressSanitizer ? 1500000 : 6000000;

struct Node;

// A pointer to a node and the id it must carry.
struct Ref {
    Node* node;
    std::uint64_t id;
};
static_assert(sizeof(Ref) == 16);

constexpr std::uint32_t kInlinePayload = 1;
constexpr std::uint32_t kNoscanPayload = 2;

struct Node {
    std::uint64_t id;
    std::uint64_t header_check;  // hash of every field above `frozen` and of the payload pointer
    std::uint64_t payload_sum;   // hash of the payload's bytes
    unsigned char* payload;      // interior pointer: payload base + payload_off
    std::uint32_t payload_size;
    std::uint32_t payload_off;
    std::uint32_t payload_refs;  // Refs at the start of the payload (scanned payloads only)
    std::uint32_t version;       // bumped when the payload is replaced
    std::uint32_t flags;
    bool frozen;                 // immutable from now on, and so is everything it reaches
    Ref children[kFanout];
};

// An immutable envelope for passing a frozen subgraph through the mailbox.
struct Parcel {
    Ref ref;
};

// Lives in gcheap memory: scanned like any object.
struct Mailbox {
    std::atomic<Parcel*> slots[kMailboxSlots];
    std::atomic<Ref*> final_roots[kMaxMutators];  // each mutator's root array, published at the end
};

std::uint64_t mix64(std::uint64_t x) {  // splitmix64's finaliser
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

std::uint64_t payload_word(std::uint64_t id, std::uint32_t version, std::uint64_t k) {
    return mix64((id * 0x100000001B3ull) ^ (std::uint64_t{version} << 48) ^ (k * 0xD6E8FEB86659FD93ull));
}

// The generated byte at offset i of the payload of (id, version).
unsigned char payload_byte(std::uint64_t id, std::uint32_t version, std::size_t i) {
    return static_cast<unsigned char>(payload_word(id, version, i / 8) >> (8 * (i % 8)));
}

void fill_payload(unsigned char* base, std::size_t from, std::size_t size, std::uint64_t id, std::uint32_t version) {
    std::size_t i = from;
    for (; i < size && i % 8 != 0; ++i) base[i] = payload_byte(id, version, i);
    for (; i + 8 <= size; i += 8) {
        const std::uint64_t w = payload_word(id, version, i / 8);
        std::memcpy(base + i, &w, 8);  // little-endian: same bytes as payload_byte()
    }
    for (; i < size; ++i) base[i] = payload_byte(id, version, i);
}

// Offset of the first generated byte that differs, or `size` if none does.
std::size_t check_payload(const unsigned char* base, std::size_t from, std::size_t size, std::uint64_t id,
                          std::uint32_t version) {
    std::size_t i = from;
    for (; i < size && i % 8 != 0; ++i) {
        if (base[i] != payload_byte(id, version, i)) return i;
    }
    for (; i + 8 <= size; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, base + i, 8);
        if (w != payload_word(id, version, i / 8)) {
            for (std::size_t j = i;; ++j) {
                if (base[j] != payload_byte(id, version, j)) return j;
            }
        }
    }
    for (; i < size; ++i) {
        if (base[i] != payload_byte(id, version, i)) return i;
    }
    return size;
}

std::uint64_t hash_bytes(const unsigned char* p, std::size_t n) {
    // Four independent multiply chains, so that hashing keeps up with the mutators.
    std::uint64_t h[4] = {0xCBF29CE484222325ull ^ n, 0x84222325CBF29CE4ull, 0x9E3779B97F4A7C15ull,
                          0xD6E8FEB86659FD93ull};
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int lane = 0; lane < 4; ++lane) {
            std::uint64_t w;
            std::memcpy(&w, p + i + 8 * lane, 8);
            h[lane] = (h[lane] ^ w) * 0x100000001B3ull;
            h[lane] ^= h[lane] >> 29;
        }
    }
    for (; i < n; ++i) h[0] = (h[0] ^ p[i]) * 0x100000001B3ull;
    return mix64(mix64(mix64(mix64(h[0]) ^ h[1]) ^ h[2]) ^ h[3]);
}

std::uint64_t header_hash(const Node& n) {
    std::uint64_t h = mix64(n.id);
    h = mix64(h ^ n.payload_sum);
    h = mix64(h ^ reinterpret_cast<std::uintptr_t>(n.payload));
    h = mix64(h ^ (std::uint64_t{n.payload_size} << 32 | n.payload_off));
    h = mix64(h ^ (std::uint64_t{n.payload_refs} << 40 | std::uint64_t{n.flags} << 32 | n.version));
    return h;
}

unsigned char* payload_base(const Node& n) { return n.payload - n.payload_off; }

Ref payload_ref(const Node& n, std::uint32_t i) {
    Ref r;
    std::memcpy(&r, payload_base(n) + std::size_t{i} * sizeof(Ref), sizeof r);
    return r;
}

std::string hex(const void* p) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%p", p);
    return buffer;
}

std::string describe(const Node& n) {
    std::ostringstream out;
    out << "node@" << hex(&n) << " id=" << std::hex << n.id << std::dec << " v" << n.version << " payload@"
        << hex(n.payload) << " (off " << n.payload_off << ", size " << n.payload_size << ", refs " << n.payload_refs
        << ", flags " << n.flags << (n.frozen ? ", frozen" : "") << ")";
    return out.str();
}

// Failures found by any thread; Catch2 assertions are not thread-safe, so the
// main thread reports these after joining.
class Failures {
public:
    void add(std::string message) {
        failed_.store(true, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lock(mu_);
        if (messages_.size() < 20) messages_.push_back(std::move(message));
    }
    bool any() const { return failed_.load(std::memory_order_relaxed); }
    std::vector<std::string> messages() {
        std::lock_guard<std::mutex> lock(mu_);
        return messages_;
    }

private:
    std::atomic<bool> failed_{false};
    std::mutex mu_;
    std::vector<std::string> messages_;
};

std::string check_identities(const gcheap::MemStats& s) {
    std::ostringstream out;
    if (s.HeapSys != s.HeapIdle + s.HeapInuse)
        out << "HeapSys " << s.HeapSys << " != HeapIdle " << s.HeapIdle << " + HeapInuse " << s.HeapInuse << "; ";
    if (s.HeapReleased > s.HeapIdle) out << "HeapReleased " << s.HeapReleased << " > HeapIdle " << s.HeapIdle << "; ";
    if (s.HeapAlloc > s.HeapInuse) out << "HeapAlloc " << s.HeapAlloc << " > HeapInuse " << s.HeapInuse << "; ";
    if (s.Alloc != s.HeapAlloc) out << "Alloc " << s.Alloc << " != HeapAlloc " << s.HeapAlloc << "; ";
    if (s.HeapObjects != s.Mallocs - s.Frees)
        out << "HeapObjects " << s.HeapObjects << " != Mallocs " << s.Mallocs << " - Frees " << s.Frees << "; ";
    if (s.TotalAlloc < s.HeapAlloc) out << "TotalAlloc " << s.TotalAlloc << " < HeapAlloc " << s.HeapAlloc << "; ";
    return out.str();
}

struct Config {
    int mutators = 4;
    bool churn = true;  // plus a thread that keeps starting short-lived mutators
    double seconds = 3.0;
    std::uint64_t max_ops = kMaxOpsPerThread;
    std::uint64_t seed = 1;
};

struct Totals {
    std::atomic<std::uint64_t> ops{0};
    std::atomic<std::uint64_t> nodes{0};
    std::atomic<std::uint64_t> large{0};
    std::atomic<std::uint64_t> verified_nodes{0};
    std::atomic<std::uint64_t> verify_passes{0};
    std::atomic<std::uint64_t> forced{0};  // collect() calls by mutators
    std::atomic<std::uint64_t> parcels{0};
    std::atomic<std::uint64_t> bursts{0};
    std::atomic<std::uint64_t> churn_threads{0};
    std::atomic<std::uint64_t> max_live{0};
};

struct Context {
    Context(Heap& h, const Config& c) : heap(h), config(c) {}
    Heap& heap;
    const Config config;
    std::chrono::steady_clock::time_point deadline;
    std::atomic<bool> stop{false};
    Failures failures;
    Totals totals;
};

void note_max(std::atomic<std::uint64_t>& max, std::uint64_t value) {
    std::uint64_t seen = max.load(std::memory_order_relaxed);
    while (value > seen && !max.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
    }
}

struct GraphSize {
    std::uint64_t nodes = 0;
    std::uint64_t payload_bytes = 0;
};

// Walks everything reachable from `roots` (children and payload Refs) and
// checks every node. Before reading an object it checks, through the arena
// index (safe while others run), that the address lies in an in-use span of
// this heap, so that a lost object is reported rather than crashing the test.
// With `exact`, also that every node and payload is an allocated object (only
// while nothing else runs). Returns false after reporting the first problem.
class GraphChecker {
public:
    explicit GraphChecker(Heap& heap) : heap_(heap) {}

    bool check(const Ref* roots, std::size_t count, const char* where, Failures& failures, GraphSize& size,
               bool exact = false, std::uint64_t max_nodes = ~std::uint64_t{0}) {
        stack_.clear();
        seen_.clear();
        for (std::size_t i = 0; i < count; ++i) {
            if (roots[i].node != nullptr) stack_.push_back({roots[i], nullptr});
        }
        while (!stack_.empty() && size.nodes < max_nodes) {
            const Edge e = stack_.back();
            stack_.pop_back();
            const auto from = [&e] {
                return e.from != nullptr ? "from " + describe(*e.from) : std::string("from a root");
            };
            if (!in_heap(e.to.node, sizeof(Node))) {
                std::ostringstream out;
                out << where << ": lost object: a Ref " << from() << " expects id " << std::hex << e.to.id << " at "
                    << hex(e.to.node) << ", which is not in an in-use span of the heap";
                failures.add(out.str());
                return false;
            }
            const Node& n = *e.to.node;
            if (n.id != e.to.id) {
                std::ostringstream out;
                out << where << ": lost or corrupted object: a Ref " << from() << " expects id " << std::hex << e.to.id
                    << " at " << hex(e.to.node) << ", found " << describe(n);
                failures.add(out.str());
                return false;
            }
            if (!seen_.insert(&n).second) continue;
            if (std::string problem = check_node(n, exact); !problem.empty()) {
                failures.add(std::string(where) + ": " + problem + ": " + describe(n));
                return false;
            }
            ++size.nodes;
            size.payload_bytes += n.payload_size;
            for (const Ref& c : n.children) {
                if (c.node != nullptr) stack_.push_back({c, &n});
            }
            for (std::uint32_t i = 0; i < n.payload_refs; ++i) {
                const Ref r = payload_ref(n, i);
                if (r.node != nullptr) stack_.push_back({r, &n});
            }
        }
        return true;
    }

private:
    struct Edge {
        Ref to;
        const Node* from;
    };

    bool in_heap(const void* p, std::size_t bytes) const {
        const auto a = reinterpret_cast<std::uintptr_t>(p);
        return heap_.arena_index().span_of(a) != nullptr && heap_.arena_index().span_of(a + bytes - 1) != nullptr;
    }

    std::string check_node(const Node& n, bool exact) const {
        if (n.payload == nullptr || n.payload_size == 0 || n.payload_off >= n.payload_size) return "bad payload fields";
        if (n.header_check != header_hash(n)) return "header checksum mismatch";
        const unsigned char* base = payload_base(n);
        if (!in_heap(base, n.payload_size)) return "lost payload: not in an in-use span of the heap";
        if (const std::uint64_t sum = hash_bytes(base, n.payload_size); sum != n.payload_sum) {
            const std::size_t at = check_payload(base, std::size_t{n.payload_refs} * sizeof(Ref), n.payload_size,
                                                 n.id, n.version);
            return "payload checksum mismatch (first bad generated byte at " + std::to_string(at) + ")";
        }
        if (check_payload(base, std::size_t{n.payload_refs} * sizeof(Ref), n.payload_size, n.id, n.version) !=
            n.payload_size) {
            return "payload bytes differ from their generator";
        }
        if (exact) {
            ObjectRef obj;
            if (!heap_.find_object(reinterpret_cast<std::uintptr_t>(&n), obj)) {
                return "node is not an allocated object";
            }
            if (obj.base != reinterpret_cast<std::uintptr_t>(&n)) return "node does not start an object";
            const auto b = reinterpret_cast<std::uintptr_t>(base);
            if (!heap_.find_object(b, obj)) return "payload is not an allocated object";
            if ((n.flags & kInlinePayload) != 0 && obj.base != reinterpret_cast<std::uintptr_t>(&n))
                return "inline payload outside its node";
            if (b + n.payload_size > obj.base + obj.span->elem_size) return "payload overruns its object";
            if (((n.flags & kNoscanPayload) != 0) != obj.span->noscan) return "payload in a span of the wrong kind";
        }
        return {};
    }

    Heap& heap_;
    std::vector<Edge> stack_;
    std::unordered_set<const Node*> seen_;
};

// One mutator: its random graph hangs off `roots_`, a gcheap array referenced
// from this object, which lives on the thread's stack.
class Mutator {
public:
    Mutator(Context& ctx, Mailbox* mailbox, std::uint64_t tag, std::uint64_t seed, std::size_t slots)
        : ctx_(ctx), mailbox_(mailbox), tag_(tag), slots_(slots), rng_(seed), checker_(ctx.heap) {}

    // Runs until the deadline, `max_ops`, or a failure anywhere. Returns the
    // root array (to be published) or nullptr after a failure.
    Ref* run(std::uint64_t max_ops) {
        roots_ = static_cast<Ref*>(ctx_.heap.alloc(slots_ * sizeof(Ref), false));
        std::uint64_t ops = 0;
        for (; ops < max_ops; ++ops) {
            if (ops % 64 == 0 && (ctx_.stop.load(std::memory_order_relaxed) ||
                                  std::chrono::steady_clock::now() >= ctx_.deadline)) {
                break;
            }
            // One explicit collection per mutator at a fixed point, so that
            // even short sanitized runs have forced cycles; more come at random.
            if (ops == 50 + (tag_ * 37) % 200 && !collect()) break;
            if (!step()) break;
            // Verify every so often, and whenever enough was built since the
            // last time that the graph may have outgrown its bounds.
            if (((ops + 1) % kVerifyEvery == 0 || built_since_verify_ > kMaxLivePayload / 2) &&
                !verify_all("periodic verification")) {
                break;
            }
        }
        ctx_.totals.ops.fetch_add(ops, std::memory_order_relaxed);
        if (failed_ || !verify_all("final verification by the mutator")) return nullptr;
        return roots_;
    }

private:
    std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(rng_() % n); }

    bool fail(const std::string& message) {
        ctx_.failures.add("mutator " + std::to_string(tag_) + ": " + message);
        ctx_.stop.store(true, std::memory_order_relaxed);
        failed_ = true;
        return false;
    }

    bool step() {
        const std::uint32_t r = below(10000);
        if (r < 3800) return create_node();
        if (r < 4800) return link();
        if (r < 5800) return drop_slot();
        if (r < 6800) return drop_edge();
        if (r < 7300) return replace_payload();
        if (r < 7900) return garbage_burst();
        if (r < 8100) return pass_parcel();
        if (r < 8130) return read_stats();
        if (r < 8131) return collect();
        if (r < 8132) return free_os_memory();
        return verify_slot();
    }

    // A random node reachable from the roots (a random walk of up to 3
    // steps), or a null Ref.
    Ref random_ref() {
        Ref r = roots_[below(static_cast<std::uint32_t>(slots_))];
        for (std::uint32_t steps = below(4); r.node != nullptr && steps > 0; --steps) {
            const Ref c = r.node->children[below(kFanout)];
            if (c.node != nullptr) r = c;
        }
        return r;
    }

    std::uint32_t random_payload_size() {
        const std::uint32_t r = below(1000);
        if (r < 100) return 1 + below(15);                          // tiny when noscan
        if (r < 900) return 16 + below(2048 - 16 + 1);              // small
        if (r < 995) return 2049 + below(32768 - 2049 + 1);         // up to the largest class
        ctx_.totals.large.fetch_add(1, std::memory_order_relaxed);  // large: a page run of its own
        return 32769 + below(160 * 1024);
    }

    // Gives `n` a fresh payload of a random kind and recomputes its checksums.
    void build_payload(Node* n, std::uint32_t size, bool allow_inline) {
        const bool inline_payload = allow_inline && below(8) != 0;
        const bool noscan = !inline_payload && below(2) == 0;
        unsigned char* base;
        if (inline_payload) {
            base = reinterpret_cast<unsigned char*>(n) + sizeof(Node);
        } else {
            // A collection here keeps n alive through a register or this frame.
            base = static_cast<unsigned char*>(ctx_.heap.alloc(size, noscan));
        }
        const std::uint32_t max_refs = noscan ? 0 : std::min<std::uint32_t>(3, size / sizeof(Ref));
        const std::uint32_t refs = max_refs == 0 ? 0 : below(max_refs + 1);
        for (std::uint32_t i = 0; i < refs; ++i) {
            const Ref r = random_ref();
            std::memcpy(base + std::size_t{i} * sizeof(Ref), &r, sizeof r);
        }
        fill_payload(base, std::size_t{refs} * sizeof(Ref), size, n->id, n->version);
        n->payload_off = below(size);
        n->payload = base + n->payload_off;  // the only pointer to a separate payload is an interior one
        n->payload_size = size;
        n->payload_refs = refs;
        n->flags = (inline_payload ? kInlinePayload : 0) | (noscan ? kNoscanPayload : 0);
        n->payload_sum = hash_bytes(base, size);
        n->header_check = header_hash(*n);
        built_since_verify_ += size;
    }

    bool create_node() {
        const std::uint32_t size = random_payload_size();
        const bool room_inline = below(4) == 0;
        auto* n = static_cast<Node*>(ctx_.heap.alloc(sizeof(Node) + (room_inline ? size : 0), false));
        n->id = tag_ << 40 | ++seq_;
        n->version = 0;
        build_payload(n, size, room_inline);
        for (Ref& c : n->children) {
            if (below(4) == 0) c = random_ref();
        }
        roots_[below(static_cast<std::uint32_t>(slots_))] = Ref{n, n->id};
        ctx_.totals.nodes.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    bool link() {
        const Ref a = random_ref();
        if (a.node == nullptr || a.node->frozen) return true;
        a.node->children[below(kFanout)] = random_ref();
        return true;
    }

    bool drop_slot() {
        roots_[below(static_cast<std::uint32_t>(slots_))] = Ref{nullptr, 0};
        return true;
    }

    bool drop_edge() {
        const Ref a = random_ref();
        if (a.node != nullptr && !a.node->frozen) a.node->children[below(kFanout)] = Ref{nullptr, 0};
        return true;
    }

    bool replace_payload() {
        const Ref a = random_ref();
        if (a.node == nullptr || a.node->frozen) return true;
        ++a.node->version;
        build_payload(a.node, random_payload_size(), false);  // the old payload becomes garbage
        return true;
    }

    // Objects reachable only from this frame, checked after more allocation.
    bool garbage_burst() {
        void* burst[kBurstMax];
        std::size_t sizes[kBurstMax];
        const std::size_t count = 1 + below(kBurstMax);
        const std::uint64_t salt = rng_();
        for (std::size_t i = 0; i < count; ++i) {
            const std::uint32_t kind = below(100);
            std::size_t size;
            if (kind < 30) {
                size = 1 + below(15);
                burst[i] = ctx_.heap.alloc(size, true);
            } else if (kind < 40) {
                size = 1 + below(4096);
                burst[i] = ctx_.heap.alloc_aligned(size, std::size_t{8} << below(10), below(2) == 0);
            } else if (kind < 95) {
                size = 16 + below(4096);
                burst[i] = ctx_.heap.alloc(size, below(2) == 0);
            } else {
                size = 32769 + below(64 * 1024);
                burst[i] = ctx_.heap.alloc(size, below(2) == 0);
            }
            sizes[i] = size;
            auto* bytes = static_cast<unsigned char*>(burst[i]);
            const std::uint64_t stamp = mix64(salt + i);
            std::memcpy(bytes, &stamp, std::min<std::size_t>(size, 8));
            const std::size_t tail_len = size > 8 ? std::min<std::size_t>(size - 8, 8) : 0;
            if (tail_len != 0) std::memcpy(bytes + size - tail_len, &stamp, tail_len);
        }
        for (std::size_t i = 0; i < count; ++i) {
            const std::size_t size = sizes[i];
            const auto* bytes = static_cast<const unsigned char*>(burst[i]);
            const std::uint64_t stamp = mix64(salt + i);
            std::uint64_t head = 0;
            std::uint64_t tail = 0;
            std::memcpy(&head, bytes, std::min<std::size_t>(size, 8));
            const std::size_t tail_len = size > 8 ? std::min<std::size_t>(size - 8, 8) : 0;
            if (tail_len != 0) std::memcpy(&tail, bytes + size - tail_len, tail_len);
            const auto mask = [](std::size_t bytes) {
                return bytes >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * bytes)) - 1;
            };
            const std::uint64_t head_mask = mask(size);
            const std::uint64_t tail_mask = mask(tail_len);
            if (head != (stamp & head_mask) || tail != (stamp & tail_mask)) {
                std::ostringstream out;
                out << "garbage burst: stack-only object " << i << " of " << count << " at " << hex(burst[i])
                    << " (size " << size << ") was overwritten";
                return fail(out.str());
            }
        }
        gcheap::keep_alive(burst);
        ctx_.totals.bursts.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    // Freezes the subgraph of a random slot and swaps it for whatever another
    // thread left in a random mailbox slot.
    bool pass_parcel() {
        const std::size_t s = below(static_cast<std::uint32_t>(slots_));
        const Ref r = roots_[s];
        if (r.node == nullptr) return true;
        freeze(r.node);
        auto* parcel = static_cast<Parcel*>(ctx_.heap.alloc(sizeof(Parcel), false));
        parcel->ref = r;
        Parcel* old = mailbox_->slots[below(kMailboxSlots)].exchange(parcel, std::memory_order_acq_rel);
        if (old != nullptr) roots_[below(static_cast<std::uint32_t>(slots_))] = old->ref;
        ctx_.totals.parcels.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    void freeze(Node* start) {
        // Unfrozen nodes belong to this thread alone; frozen ones reach only frozen ones.
        freeze_stack_.clear();
        freeze_stack_.push_back(start);
        while (!freeze_stack_.empty()) {
            Node* n = freeze_stack_.back();
            freeze_stack_.pop_back();
            if (n->frozen) continue;
            n->frozen = true;
            for (const Ref& c : n->children) {
                if (c.node != nullptr) freeze_stack_.push_back(c.node);
            }
            for (std::uint32_t i = 0; i < n->payload_refs; ++i) {
                const Ref p = payload_ref(*n, i);
                if (p.node != nullptr) freeze_stack_.push_back(p.node);
            }
        }
    }

    bool read_stats() {
        const gcheap::MemStats s = ctx_.heap.read_mem_stats();
        if (std::string problem = check_identities(s); !problem.empty()) {
            return fail("MemStats identities broken while mutators run: " + problem);
        }
        return true;
    }

    bool collect() {
        ctx_.heap.collector().collect();
        ctx_.totals.forced.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    // debug.FreeOSMemory(): later page runs come back released, not dirty.
    bool free_os_memory() {
        ctx_.heap.collector().collect();
        ctx_.heap.release_free_pages();
        ctx_.totals.forced.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    bool verify_slot() {
        GraphSize size;
        const std::size_t s = below(static_cast<std::uint32_t>(slots_));
        if (roots_[s].node == nullptr || below(4) != 0) return true;  // mostly a no-op step
        return checker_.check(&roots_[s], 1, "slot verification", ctx_.failures, size, false, 32) ||
               fail("see above");
    }

    bool verify_all(const char* where) {
        built_since_verify_ = 0;
        GraphSize size;
        if (!checker_.check(roots_, slots_, where, ctx_.failures, size)) return fail("see above");
        ctx_.totals.verified_nodes.fetch_add(size.nodes, std::memory_order_relaxed);
        ctx_.totals.verify_passes.fetch_add(1, std::memory_order_relaxed);
        note_max(ctx_.totals.max_live, size.nodes);
        if (size.nodes > kMaxLiveNodes || size.payload_bytes > kMaxLivePayload) {
            for (std::size_t s = 0; s < slots_; ++s) {
                if (below(8) != 0) roots_[s] = Ref{nullptr, 0};  // let most of the graph go
            }
        }
        return true;
    }

    Context& ctx_;
    Mailbox* const mailbox_;
    const std::uint64_t tag_;
    const std::size_t slots_;
    std::mt19937_64 rng_;
    Ref* roots_ = nullptr;
    std::uint64_t seq_ = 0;
    std::uint64_t built_since_verify_ = 0;
    bool failed_ = false;
    GraphChecker checker_;
    std::vector<Node*> freeze_stack_;
};

void mutator_main(Context& ctx, Mailbox* mailbox, int index) {
    // Even threads register explicitly and unregister before exiting; odd
    // ones are registered by their first allocation and released at exit.
    const bool explicit_registration = index % 2 == 0;
    try {
        if (explicit_registration) ctx.heap.register_current_thread();
        const auto tag = static_cast<std::uint64_t>(index) + 1;
        Mutator m(ctx, mailbox, tag, ctx.config.seed * 1000003 + tag, kRootSlots);
        if (Ref* roots = m.run(ctx.config.max_ops)) {
            mailbox->final_roots[index].store(roots, std::memory_order_release);
        }
        if (explicit_registration) ctx.heap.unregister_current_thread();
    } catch (const std::exception& e) {
        ctx.failures.add("mutator " + std::to_string(index) + " threw: " + e.what());
        ctx.stop.store(true, std::memory_order_relaxed);
    }
}

// Keeps starting short-lived mutators, so that threads register, allocate,
// pass parcels and exit while others collect.
void churn_main(Context& ctx, Mailbox* mailbox) {
    std::uint64_t generation = 0;
    while (!ctx.stop.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < ctx.deadline) {
        ++generation;
        std::thread child([&ctx, mailbox, generation] {
            try {
                const std::uint64_t tag = 1000 + generation;
                Mutator m(ctx, mailbox, tag, ctx.config.seed * 7919 + tag, kChurnRootSlots);
                m.run(kThreadSanitizer ? 300 : 2000);  // its graph dies with it, except what it passed on
            } catch (const std::exception& e) {
                ctx.failures.add("churn thread threw: " + std::string(e.what()));
                ctx.stop.store(true, std::memory_order_relaxed);
            }
        });
        child.join();
        ctx.totals.churn_threads.fetch_add(1, std::memory_order_relaxed);
    }
}

[[gnu::noinline]] Mailbox* new_mailbox(Heap& heap) {
    return ::new (heap.alloc(sizeof(Mailbox), false)) Mailbox();
}

double seconds_from_environment(double fallback) {
    if (const char* s = std::getenv("GCHEAP_STRESS_SECONDS")) {
        char* end = nullptr;
        const double v = std::strtod(s, &end);
        if (end != s && v > 0) return v;
    }
    return fallback;
}

std::uint64_t seed_from_environment() {
    if (const char* s = std::getenv("GCHEAP_STRESS_SEED")) return std::strtoull(s, nullptr, 0);
    return 1;
}

struct Outcome {
    std::vector<std::string> failures;
    std::string final_problem;  // from the main thread's checks after joining
    std::uint64_t expected_forced = 0;
    std::uint64_t final_nodes = 0;
    double run_seconds = 0;
};

// Everything that holds gcheap pointers happens in this frame (and in the
// threads), so that the caller can clear the stack and expect an empty heap.
[[gnu::noinline]] Outcome run_stress(Heap& heap, const Config& config, Totals*& totals_out,
                                     std::unique_ptr<Context>& ctx_owner) {
    ctx_owner = std::make_unique<Context>(heap, config);
    Context& ctx = *ctx_owner;
    totals_out = &ctx.totals;
    Outcome outcome;
    // The mailbox is kept alive by a registered root range rather than by this
    // thread's stack: this thread unregisters before it blocks in join(),
    // because under ThreadSanitizer a registered thread blocked in a call
    // that TSan treats as blocking (join) never takes the stop signal and so
    // stalls every collection.
    Mailbox* mailbox = new_mailbox(heap);  // registers this thread
    Mailbox* mailbox_root[1] = {mailbox};
    heap.collector().roots().add(mailbox_root, mailbox_root + 1);
    heap.unregister_current_thread();
    struct RemoveRoot {
        Heap& heap;
        Mailbox** root;
        ~RemoveRoot() { heap.collector().roots().remove(root, root + 1); }
    } remove_root{heap, mailbox_root};

    const auto start = std::chrono::steady_clock::now();
    ctx.deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(config.seconds));
    std::vector<std::thread> threads;
    for (int i = 0; i < config.mutators; ++i) threads.emplace_back(mutator_main, std::ref(ctx), mailbox, i);
    if (config.churn) threads.emplace_back(churn_main, std::ref(ctx), mailbox);
    for (std::thread& t : threads) t.join();
    outcome.run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    outcome.failures = ctx.failures.messages();
    outcome.expected_forced = ctx.totals.forced.load();
    if (!outcome.failures.empty()) return outcome;

    // Everything the threads left behind, checked once more with the world
    // quiet: after a full collection every node and payload must still be an
    // allocated object with intact contents.
    gcheap::test::clear_stack();
    heap.collector().collect();
    ++outcome.expected_forced;
    std::vector<Ref> roots;  // malloc'd copies: the mailbox keeps the originals reachable
    for (int i = 0; i < config.mutators; ++i) {
        const Ref* r = mailbox->final_roots[i].load(std::memory_order_acquire);
        if (r == nullptr) {
            outcome.final_problem = "mutator " + std::to_string(i) + " published no roots";
            return outcome;
        }
        roots.insert(roots.end(), r, r + kRootSlots);
    }
    for (auto& slot : mailbox->slots) {
        if (const Parcel* p = slot.load(std::memory_order_acquire)) roots.push_back(p->ref);
    }
    Failures final_failures;
    GraphChecker checker(heap);
    GraphSize size;
    if (!checker.check(roots.data(), roots.size(), "final verification after collect()", final_failures, size, true)) {
        outcome.final_problem = final_failures.messages().front();
        return outcome;
    }
    outcome.final_nodes = size.nodes;
    if (const char* problem = heap.verify()) {
        outcome.final_problem = std::string("heap.verify(): ") + problem;
        return outcome;
    }
    const gcheap::MemStats s = heap.read_mem_stats();
    if (std::string problem = check_identities(s); !problem.empty()) {
        outcome.final_problem = "MemStats identities: " + problem;
        return outcome;
    }
    const SlowCounts slow = heap.count_slow();
    if (slow.objects != s.HeapObjects || slow.alloc_bytes != s.HeapAlloc || slow.inuse_bytes != s.HeapInuse) {
        std::ostringstream out;
        out << "slow recount differs: objects " << slow.objects << " vs HeapObjects " << s.HeapObjects << ", bytes "
            << slow.alloc_bytes << " vs HeapAlloc " << s.HeapAlloc << ", inuse " << slow.inuse_bytes << " vs HeapInuse "
            << s.HeapInuse;
        outcome.final_problem = out.str();
        return outcome;
    }
    if (s.HeapObjects < size.nodes) {
        outcome.final_problem = "HeapObjects " + std::to_string(s.HeapObjects) + " < " + std::to_string(size.nodes) +
                                " reachable nodes";
        return outcome;
    }

    // Drop everything.
    for (auto& r : mailbox->final_roots) r.store(nullptr, std::memory_order_relaxed);
    for (auto& slot : mailbox->slots) slot.store(nullptr, std::memory_order_relaxed);
    std::fill(roots.begin(), roots.end(), Ref{nullptr, 0});
    mailbox = nullptr;
    mailbox_root[0] = nullptr;
    gcheap::keep_alive(mailbox);
    return outcome;
}

void stress(const HeapOptions& options, const Config& config) {
    REQUIRE(config.mutators >= 1);
    REQUIRE(config.mutators <= kMaxMutators);
    auto heap = std::make_unique<Heap>(options);
    Totals* totals = nullptr;
    std::unique_ptr<Context> ctx;
    const Outcome outcome = run_stress(*heap, config, totals, ctx);

    INFO("seed " << config.seed);
    for (const std::string& f : outcome.failures) FAIL_CHECK(f);
    REQUIRE(outcome.failures.empty());
    INFO(outcome.final_problem);
    REQUIRE(outcome.final_problem.empty());
    CHECK(totals->nodes.load() > 1000);
    CHECK(totals->verify_passes.load() >= static_cast<std::uint64_t>(config.mutators));

    const gcheap::MemStats before = heap->read_mem_stats();
    INFO("NumGC " << before.NumGC << ", NumForcedGC " << before.NumForcedGC << ", expected forced "
                  << outcome.expected_forced);
    CHECK(before.NumForcedGC == outcome.expected_forced);  // every collect() counted once
    CHECK(before.NumGC > before.NumForcedGC);             // and the pacer triggered cycles too
    CHECK(before.NumForcedGC >= 2);                        // at least one by a mutator, one by this thread

    // With every root dropped, the heap empties out but for what stale stack
    // words of this thread may still pin.
    gcheap::test::clear_stack();
    heap->collector().collect();
    const gcheap::MemStats after = heap->read_mem_stats();
    INFO("after dropping everything: HeapObjects " << after.HeapObjects << ", HeapAlloc " << after.HeapAlloc
                                                   << " (before: " << before.HeapObjects << " objects, "
                                                   << outcome.final_nodes << " reachable nodes)");
    std::printf(
        "gc stress: %d mutators%s, mark_threads %u, %.2f s: %llu ops, %llu nodes (%llu large), %llu bursts, %llu "
        "parcels, %llu churn threads, %llu verify passes over %llu nodes (max live %llu); NumGC %u (%u forced); "
        "%llu objects left after dropping everything\n",
        config.mutators, config.churn ? " + churn" : "", options.mark_threads, outcome.run_seconds,
        static_cast<unsigned long long>(totals->ops.load()), static_cast<unsigned long long>(totals->nodes.load()),
        static_cast<unsigned long long>(totals->large.load()), static_cast<unsigned long long>(totals->bursts.load()),
        static_cast<unsigned long long>(totals->parcels.load()),
        static_cast<unsigned long long>(totals->churn_threads.load()),
        static_cast<unsigned long long>(totals->verify_passes.load()),
        static_cast<unsigned long long>(totals->verified_nodes.load()),
        static_cast<unsigned long long>(totals->max_live.load()), before.NumGC, before.NumForcedGC,
        static_cast<unsigned long long>(after.HeapObjects));
    CHECK(check_identities(after).empty());
    CHECK(after.HeapObjects <= 64);
    CHECK(after.HeapAlloc <= (std::uint64_t{2} << 20));  // a stale word might pin one large payload
    CHECK(heap->verify() == nullptr);
}

HeapOptions stress_options(unsigned mark_threads, bool background_sweeper) {
    HeapOptions options;
    options.gc_percent = 100;  // the pacer triggers collections from allocating threads
    options.mark_threads = mark_threads;
    options.parallel_mark_min_bytes = 0;  // the helpers mark in every cycle, however small
    options.background_sweeper = background_sweeper;
    if (const char* trace = std::getenv("GCHEAP_STRESS_GCTRACE")) options.gctrace = std::atoi(trace);
    return options;
}

}  // namespace

TEST_CASE("gc stress: checksummed graphs of 4 mutators and a thread churner survive with 2 mark threads",
          "[stress]") {
    Config config;
    config.mutators = 4;
    config.churn = true;
    config.seconds = seconds_from_environment(3.0);
    config.seed = seed_from_environment();
    stress(stress_options(2, true), config);
}

TEST_CASE("gc stress: checksummed graphs of 4 mutators survive with 1 mark thread and no background sweeper",
          "[stress]") {
    Config config;
    config.mutators = 4;
    config.churn = false;
    config.seconds = seconds_from_environment(3.0) / 2;
    config.seed = seed_from_environment() + 77;
    config.max_ops = kMaxOpsPerThread / 2;
    stress(stress_options(1, false), config);
}
