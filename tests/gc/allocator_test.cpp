// Standard containers over gcheap::allocator and gcheap::traceable_allocator
// (include/gcheap/allocator.hpp): their elements' objects survive
// collections run from several threads while the containers are in use,
// pointer-free element types get storage that is never scanned, a dropped
// container's storage is reclaimed, and traceable storage is a root wherever
// the container lives. Written as an application would write them: no stack
// wiping, no noinline tricks. Where a test needs an object that nothing
// points to, a short-lived thread makes it: its stack is gone when it exits.
//
// A lost object is caught two ways: each object has a finalizer, which runs
// only if a collection found the object unreachable (objects are resurrected
// until it has run), and a check value, which the garbage that the tests
// allocate overwrites once a freed object's slot is reused.
//
// Waits: a registered thread that waits while another thread may collect
// waits in pause_briefly(), never in pthread_join or pthread_mutex_lock,
// because under ThreadSanitizer a collection could not stop it there
// (docs/design.md, "Stopping the world"); see pause_briefly().
#include "gc/collector.hpp"
#include "runtime/heap.hpp"

#include <gcheap/allocator.hpp>
#include <gcheap/gcheap.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Obj {
    std::uint64_t id;
    std::uint64_t check;
    std::uint64_t epoch;
};

// Objects of the running test carry its epoch; finalizers of an earlier
// test's objects (all tests may run in one process) are not losses.
std::atomic<std::uint64_t> g_epoch{1};
std::atomic<std::uint64_t> g_lost{0};
std::atomic<std::uint64_t> g_probes{0};

struct Epoch {
    Epoch() {
        g_epoch.fetch_add(1);
        g_lost.store(0);
    }
    ~Epoch() { g_epoch.fetch_add(1); }
    Epoch(const Epoch&) = delete;
    Epoch& operator=(const Epoch&) = delete;
};

constexpr std::uint64_t seal(std::uint64_t id, std::uint64_t epoch) {
    return (id * 0x9E3779B97F4A7C15ull) ^ (epoch << 40) ^ 0x0B1EC7C0FFEEull;
}

void on_lost(void* object) {
    if (static_cast<const Obj*>(object)->epoch == g_epoch.load()) g_lost.fetch_add(1);
}

// A gcheap object whose finalizer counts it lost: a finalizer runs only for
// an object that a collection found unreachable.
Obj* make_obj(std::uint64_t id) {
    const std::uint64_t epoch = g_epoch.load();
    Obj* object = gcheap::make<Obj>(Obj{id, seal(id, epoch), epoch});
    gcheap::set_finalizer(object, on_lost);
    return object;
}

// The program drops `object` on purpose: not a loss.
void retire(Obj* object) {
    if (object != nullptr) gcheap::set_finalizer(object, nullptr);
}

bool intact(const Obj* object) {
    return object != nullptr && object->epoch == g_epoch.load() && object->check == seal(object->id, object->epoch);
}

// Garbage in the size classes of Obj and of the containers' nodes, filled
// with a pattern: a freed object or node whose slot is reused shows it. The
// large pointer-free blocks make the heap grow to its goal, so that
// allocation starts collections of its own.
void make_garbage(int count, int large_blocks) {
    static constexpr std::size_t kSizes[] = {24, 32, 48, 64, 80};
    for (int i = 0; i < count; ++i) {
        const std::size_t size = kSizes[i % 5];
        std::memset(gcheap::alloc(size), 0xDE, size);
    }
    for (int i = 0; i < large_blocks; ++i) std::memset(gcheap::alloc_noscan(16 << 10), 0xDE, 16 << 10);
}

// A moment's wait during which a collection can stop this thread. Under
// ThreadSanitizer (GCC 12), a registered thread that a world stop has parked
// through TSan's deferred signal delivery is left with every signal blocked,
// so later stops reach it only through gcheap's polling locks; the wait
// therefore calls read_mem_stats(), which takes the allocator gate that a
// collection keeps closed while it stops the world, and a thread that finds
// it closed parks itself. (sched_yield() alone would not do even without
// that: TSan does not intercept it, so it delivers no signal.)
void pause_briefly() {
    gcheap::read_mem_stats();
    std::this_thread::sleep_for(20us);
}

// Joins `thread` once it has set `done`. Until then the caller waits in
// pause_briefly(), so that a collection started by another thread can stop it
// (under TSan it could not stop a thread blocked in pthread_join). Only when
// no other thread can still collect: an exiting thread unregisters, which
// waits for a collection in progress, and that collection would wait for the
// joining thread.
void join_after(std::thread& thread, const std::atomic<bool>& done) {
    while (!done.load()) pause_briefly();
    thread.join();
}

// Threads that collect with gcheap::collect() and allocate garbage (which
// starts automatic collections too) until stopped.
class Collectors {
public:
    explicit Collectors(int count) : running_(count) {
        for (int i = 0; i < count; ++i) threads_.emplace_back([this] { run(); });
    }
    ~Collectors() { stop(); }
    Collectors(const Collectors&) = delete;
    Collectors& operator=(const Collectors&) = delete;

    void stop() {
        stop_.store(true);
        while (running_.load() != 0) pause_briefly();
        for (std::thread& thread : threads_) thread.join();
        threads_.clear();
    }

private:
    void run() {
        while (!stop_.load()) {
            gcheap::collect();
            make_garbage(3000, 256);
            pause_briefly();
        }
        running_.fetch_sub(1);
    }

    std::atomic<bool> stop_{false};
    std::atomic<int> running_;
    std::vector<std::thread> threads_;
};

void probe_finalizer(void*) { g_probes.fetch_add(1); }

// Returns once the finalizers of all objects that collections have found
// unreachable so far have run. The finalizer thread runs finalizers in the
// order collections queue them, so: collect, then collect again with one
// more unreachable object (made by a thread that then exits, so no stack
// holds it) and wait for its finalizer.
bool drain_finalizers() {
    gcheap::collect();
    const std::uint64_t target = g_probes.load() + 1;
    std::atomic<bool> done{false};
    std::thread maker([&done] {
        gcheap::set_finalizer(gcheap::make<Obj>(), probe_finalizer);
        done.store(true);
    });
    join_after(maker, done);
    gcheap::collect();
    const auto deadline = Clock::now() + 20s;
    while (g_probes.load() < target) {
        if (Clock::now() > deadline) return false;
        pause_briefly();
    }
    return true;
}

bool is_noscan(const void* storage) {
    gcheap::detail::ObjectInfo info;
    REQUIRE(gcheap::detail::default_heap().object_info(storage, info));
    return info.noscan;
}

std::size_t uncollectable_objects() { return gcheap::detail::default_heap().collector().roots().object_count(); }

// ---- Containers of Obj* behind one interface, for exercise() -------------
// put(id, object) stores `object` as the element for `id`, returning the one
// it replaces (nullptr for a new id); each(f) calls f on every element (f
// gets nullptr for an element found corrupt); churn(round) makes the
// container reallocate its storage.

template <template <class> class Alloc>
struct VectorOf {
    std::vector<Obj*, Alloc<Obj*>> v;

    Obj* put(std::uint64_t id, Obj* object) {
        if (id == v.size()) {
            v.push_back(object);
            return nullptr;
        }
        return std::exchange(v.at(id), object);
    }
    template <class F>
    void each(F&& f) const {
        for (Obj* object : v) f(object);
    }
    void churn(int round) {
        if (round % 2 == 0) {
            std::vector<Obj*, Alloc<Obj*>> copy(v);  // a new buffer; the old one is dropped
            v.swap(copy);
        } else {
            v.reserve(v.capacity() * 2);
            v.shrink_to_fit();
        }
    }
};

// Rotated by churn(): the element for `id` is at (id - offset) mod size.
template <template <class> class Alloc>
struct DequeOf {
    std::deque<Obj*, Alloc<Obj*>> d;
    std::size_t offset = 0;

    Obj* put(std::uint64_t id, Obj* object) {
        if (id == d.size() && offset == 0) {
            d.push_back(object);
            return nullptr;
        }
        return std::exchange(d.at((id + d.size() - offset) % d.size()), object);
    }
    template <class F>
    void each(F&& f) const {
        for (Obj* object : d) f(object);
    }
    void churn(int round) {
        // Front to back (blocks freed at the front, allocated at the back) and
        // back to front, 1500 elements net forward.
        const int forward = round % 2 == 0 ? 3000 : 0;
        const int backward = round % 2 == 0 ? 0 : 1500;
        for (int i = 0; i < forward; ++i) {
            d.push_back(d.front());
            d.pop_front();
        }
        for (int i = 0; i < backward; ++i) {
            d.push_front(d.back());
            d.pop_back();
        }
        offset = (offset + d.size() * 2 + static_cast<std::size_t>(forward) - static_cast<std::size_t>(backward)) %
                 d.size();
    }
};

template <template <class> class Alloc>
struct MapOf {
    std::map<long, Obj*, std::less<long>, Alloc<std::pair<const long, Obj*>>> m;

    Obj* put(std::uint64_t id, Obj* object) {
        const long key = static_cast<long>(id);
        Obj* old = nullptr;
        if (auto it = m.find(key); it != m.end()) {
            old = it->second;
            m.erase(it);  // a new node, not an assignment
        }
        m.emplace(key, object);
        return old;
    }
    template <class F>
    void each(F&& f) const {
        for (const auto& [key, object] : m) f(intact(object) && object->id == static_cast<std::uint64_t>(key) ? object : nullptr);
    }
    void churn(int) {
        auto copy = m;
        m.swap(copy);
    }
};

template <template <class> class Alloc>
struct UnorderedMapOf {
    std::unordered_map<long, Obj*, std::hash<long>, std::equal_to<long>, Alloc<std::pair<const long, Obj*>>> m;

    Obj* put(std::uint64_t id, Obj* object) {
        const long key = static_cast<long>(id);
        Obj* old = nullptr;
        if (auto it = m.find(key); it != m.end()) {
            old = it->second;
            m.erase(it);
        }
        m.emplace(key, object);
        return old;
    }
    template <class F>
    void each(F&& f) const {
        for (const auto& [key, object] : m) f(intact(object) && object->id == static_cast<std::uint64_t>(key) ? object : nullptr);
    }
    void churn(int round) {
        if (round % 2 == 0) m.rehash(m.bucket_count() * 4);  // a new bucket array
        else m.rehash(0);
    }
};

// Even ids have short keys (in the node, SSO), odd ids long ones (in
// std::allocator memory, which is fine: they hold no gcheap pointers).
std::string key_of(std::uint64_t id) {
    return id % 2 == 0 ? std::to_string(id) : "object number " + std::to_string(id) + " of the string map";
}

template <template <class> class Alloc>
struct StringMapOf {
    std::map<std::string, Obj*, std::less<>, Alloc<std::pair<const std::string, Obj*>>> m;

    Obj* put(std::uint64_t id, Obj* object) {
        const std::string key = key_of(id);
        Obj* old = nullptr;
        if (auto it = m.find(std::string_view(key)); it != m.end()) {  // heterogeneous lookup
            old = it->second;
            m.erase(it);
        }
        m.emplace(key, object);
        return old;
    }
    template <class F>
    void each(F&& f) const {
        for (const auto& [key, object] : m) f(intact(object) && key == key_of(object->id) ? object : nullptr);
    }
    void churn(int) {
        auto copy = m;
        m.swap(copy);
    }
};

// "" if `c` holds exactly one intact object for each id below n.
template <class C>
std::string damage(const C& c, std::size_t n) {
    std::vector<char> seen(n, 0);
    std::size_t total = 0;
    std::size_t bad = 0;
    c.each([&](const Obj* object) {
        ++total;
        if (!intact(object) || object->id >= n || seen[object->id]++ != 0) ++bad;
    });
    if (bad == 0 && total == n) return "";
    return std::to_string(bad) + " damaged or duplicate elements of " + std::to_string(total) + " (expected " +
           std::to_string(n) + ")";
}

// Fills `c` with n objects and keeps replacing a seventh of them and
// reallocating the container's storage, while two threads collect and
// allocate garbage and this thread's own garbage starts automatic
// collections; checks every element after every round, until at least 100
// collections (5 automatic) have run; then checks that no finalizer ran.
constexpr int kMinRounds = 14;  // every element replaced twice
constexpr std::uint32_t kMinCycles = 100;
constexpr std::uint32_t kMinAutomatic = 5;

template <class C>
void exercise(C& c, std::size_t n = 20000) {
    gcheap::register_current_thread();
    const gcheap::MemStats start = gcheap::read_mem_stats();
    Collectors collectors(2);
    for (std::uint64_t id = 0; id < n; ++id) {
        REQUIRE(c.put(id, make_obj(id)) == nullptr);
        if (id % 1000 == 0) make_garbage(300, 4);
    }
    REQUIRE(damage(c, n) == "");
    const auto began = Clock::now();
    std::uint32_t cycles = 0;
    std::uint32_t automatic = 0;
    for (int round = 0;; ++round) {
        for (std::uint64_t id = static_cast<std::uint64_t>(round % 7); id < n; id += 7) retire(c.put(id, make_obj(id)));
        c.churn(round);
        make_garbage(5000, 32);
        INFO("round " << round);
        REQUIRE(damage(c, n) == "");
        const gcheap::MemStats now = gcheap::read_mem_stats();
        cycles = now.NumGC - start.NumGC;
        automatic = cycles - (now.NumForcedGC - start.NumForcedGC);
        if (round >= kMinRounds && cycles >= kMinCycles && automatic >= kMinAutomatic) break;
        INFO(cycles << " collections, " << automatic << " automatic");
        REQUIRE(Clock::now() - began < 60s);
    }
    collectors.stop();
    REQUIRE(drain_finalizers());
    INFO(cycles << " collections, " << automatic << " automatic");
    CHECK(damage(c, n) == "");
    CHECK(g_lost.load() == 0);
}

// ---- Allocator requirements, at compile time -------------------------------

template <template <class> class A>
constexpr bool meets_allocator_requirements() {
    using Alloc = A<Obj*>;
    using Traits = std::allocator_traits<Alloc>;
    static_assert(std::is_same_v<typename Traits::value_type, Obj*>);
    static_assert(std::is_same_v<typename Traits::pointer, Obj**>);
    static_assert(std::is_same_v<typename Traits::size_type, std::size_t>);
    static_assert(std::is_same_v<typename Traits::template rebind_alloc<long>, A<long>>);
    static_assert(std::is_same_v<typename Traits::template rebind_traits<long>::pointer, long*>);
    static_assert(std::is_same_v<typename std::allocator_traits<A<long>>::template rebind_alloc<Obj*>, Alloc>);
    static_assert(Traits::is_always_equal::value);
    static_assert(Traits::propagate_on_container_copy_assignment::value);
    static_assert(Traits::propagate_on_container_move_assignment::value);
    static_assert(Traits::propagate_on_container_swap::value);
    static_assert(std::is_empty_v<Alloc>);
    static_assert(std::is_nothrow_default_constructible_v<Alloc>);
    static_assert(std::is_nothrow_copy_constructible_v<Alloc>);
    static_assert(std::is_nothrow_move_constructible_v<Alloc>);
    static_assert(std::is_nothrow_constructible_v<A<long>, const Alloc&>);  // rebinding copy
    static_assert(std::is_same_v<decltype(std::declval<Alloc&>().allocate(std::size_t{1})), Obj**>);
    static_assert(noexcept(std::declval<Alloc&>().deallocate(nullptr, 1)));
    static_assert(noexcept(Alloc{} == A<long>{}));
    static_assert(Alloc{} == A<long>{});
    static_assert(A<long>(Alloc{}) == Alloc{});
    static_assert(!(A<double>{} != Alloc{}));
    static_assert(Traits::max_size(Alloc{}) == std::numeric_limits<std::size_t>::max() / sizeof(Obj*));
    return true;
}
static_assert(meets_allocator_requirements<gcheap::allocator>());
static_assert(meets_allocator_requirements<gcheap::traceable_allocator>());

enum class Colour : std::uint8_t { red, green };
static_assert(gcheap::is_pointer_free_v<double>);
static_assert(gcheap::is_pointer_free_v<std::uint64_t>);
static_assert(gcheap::is_pointer_free_v<char>);
static_assert(gcheap::is_pointer_free_v<Colour>);
static_assert(!gcheap::is_pointer_free_v<Obj*>);
static_assert(!gcheap::is_pointer_free_v<Obj>);
static_assert(!gcheap::is_pointer_free_v<std::pair<const long, Obj*>>);
static_assert(!gcheap::is_pointer_free_v<std::uintptr_t*>);

struct alignas(64) Wide {
    Obj* object;
};

struct Point {  // pointer-free, declared so below
    double x;
    double y;
};

}  // namespace

template <>
struct gcheap::is_pointer_free<Point> : std::true_type {};

TEST_CASE("std::allocator (the control): objects that only a std::vector's buffer points to are lost",
          "[allocator]") {
    // What the tests below would see without gcheap's allocators, and so
    // that their checks can see it: the finalizers run.
    gcheap::register_current_thread();
    Epoch epoch;
    std::vector<Obj*> objects;
    for (std::uint64_t id = 0; id < 20000; ++id) objects.push_back(make_obj(id));
    REQUIRE(drain_finalizers());
    INFO(g_lost.load() << " of 20000 lost");
    CHECK(g_lost.load() > 19000);  // a few may be pinned by stale words
}

TEST_CASE("allocator: std::vector<Obj*> keeps its objects through concurrent collections", "[allocator]") {
    Epoch epoch;
    VectorOf<gcheap::allocator> c;
    exercise(c);
}

TEST_CASE("allocator: std::deque<Obj*> keeps its objects through concurrent collections", "[allocator]") {
    Epoch epoch;
    DequeOf<gcheap::allocator> c;
    exercise(c);
}

TEST_CASE("allocator: std::map<long, Obj*> keeps its objects through concurrent collections", "[allocator]") {
    Epoch epoch;
    MapOf<gcheap::allocator> c;
    exercise(c);
}

TEST_CASE("allocator: std::unordered_map<long, Obj*> keeps its objects through concurrent collections",
          "[allocator]") {
    Epoch epoch;
    UnorderedMapOf<gcheap::allocator> c;
    exercise(c);
}

TEST_CASE("allocator: std::map<std::string, Obj*, std::less<>> keeps its objects through concurrent collections",
          "[allocator]") {
    Epoch epoch;
    StringMapOf<gcheap::allocator> c;
    exercise(c);
}

TEST_CASE("allocator: a std::deque queue between a producer and a consumer while a third thread collects",
          "[allocator]") {
    gcheap::register_current_thread();  // this thread's stack holds the queue
    Epoch epoch;
    const gcheap::MemStats start = gcheap::read_mem_stats();
    std::deque<Obj*, gcheap::allocator<Obj*>> queue;
    std::mutex mutex;
    // try_lock: a thread blocked in pthread_mutex_lock could not be stopped
    // under TSan while the lock's holder is stopped.
    const auto lock = [&mutex] {
        while (!mutex.try_lock()) pause_briefly();
    };
    constexpr std::uint64_t kMinCount = 50000;
    constexpr std::uint64_t kMinCollections = 30;  // collect() calls while objects are queued
    constexpr std::size_t kBacklog = 5000;         // the consumer lets this many wait in the queue
    std::atomic<std::uint64_t> produced{0};
    std::atomic<bool> producer_done{false};
    std::atomic<bool> consumer_done{false};
    std::atomic<bool> collector_done{false};
    std::atomic<std::uint64_t> damaged{0};
    std::atomic<std::uint64_t> out_of_order{0};
    std::atomic<std::uint64_t> collections{0};
    const auto began = Clock::now();

    std::thread producer([&] {
        std::uint64_t id = 0;
        // At least kMinCount objects, and on until the collector has run
        // kMinCollections times (or 30 s have passed: the checks below fail).
        while (id < kMinCount || (collections.load() < kMinCollections && Clock::now() - began < 30s)) {
            Obj* object = make_obj(id);
            lock();
            queue.push_back(object);
            mutex.unlock();
            ++id;
            produced.store(id);
            if (id % 500 == 0) make_garbage(200, 8);
        }
        producer_done.store(true);
    });
    std::thread consumer([&] {
        // It holds the objects it pops before it first allocates: it must
        // register, or a collection neither scans nor stops it.
        gcheap::ThreadScope scope;
        std::uint64_t next = 0;
        while (!producer_done.load() || next < produced.load()) {
            Obj* object = nullptr;
            lock();
            if (!queue.empty() && (queue.size() > kBacklog || producer_done.load())) {
                object = queue.front();
                queue.pop_front();
            }
            mutex.unlock();
            if (object == nullptr) {
                pause_briefly();
                continue;
            }
            if (!intact(object)) damaged.fetch_add(1);
            else if (object->id != next) out_of_order.fetch_add(1);
            retire(object);
            ++next;
            if (next % 500 == 0) make_garbage(200, 8);
        }
        consumer_done.store(true);
    });
    std::thread collector([&] {
        while (!producer_done.load()) {
            gcheap::collect();
            collections.fetch_add(1);
            make_garbage(2000, 64);
            pause_briefly();
        }
        collector_done.store(true);
    });
    // All three finished before any join (see join_after()).
    while (!producer_done.load() || !consumer_done.load() || !collector_done.load()) pause_briefly();
    producer.join();
    consumer.join();
    collector.join();

    REQUIRE(drain_finalizers());
    const gcheap::MemStats end = gcheap::read_mem_stats();
    INFO(produced.load() << " objects, " << collections.load() << " collect() calls, " << end.NumGC - start.NumGC
                         << " collections in all");
    CHECK(collections.load() >= kMinCollections);
    // Automatic cycles usually happen too, but not in every run (once none did
    // under TSan in CI): the forced ones from the third thread are the test.
    if (end.NumGC - end.NumForcedGC == start.NumGC - start.NumForcedGC) WARN("no automatic collection this run");
    CHECK(queue.empty());
    CHECK(damaged.load() == 0);
    CHECK(out_of_order.load() == 0);
    CHECK(g_lost.load() == 0);
}

TEST_CASE("traceable_allocator: a std::vector inside a new'd struct keeps its objects and gives its storage back",
          "[allocator]") {
    Epoch epoch;
    const std::size_t uncollectable_before = uncollectable_objects();
    // The struct is in malloc memory, which the collector never reads: only
    // the storage's being uncollectable keeps the objects alive.
    auto registry = std::make_unique<VectorOf<gcheap::traceable_allocator>>();
    exercise(*registry);
    CHECK(uncollectable_objects() == uncollectable_before + 1);  // one buffer
    registry.reset();  // deallocate(): free_uncollectable
    CHECK(uncollectable_objects() == uncollectable_before);
}

TEST_CASE("traceable_allocator: a std::unordered_map inside a new'd struct keeps its objects and gives its storage back",
          "[allocator]") {
    Epoch epoch;
    const std::size_t uncollectable_before = uncollectable_objects();
    auto registry = std::make_unique<UnorderedMapOf<gcheap::traceable_allocator>>();
    exercise(*registry);
    CHECK(uncollectable_objects() == uncollectable_before + 20000 + 1);  // the nodes and the bucket array
    registry.reset();
    CHECK(uncollectable_objects() == uncollectable_before);
}

TEST_CASE("allocator: pointer-free element types get storage that is never scanned", "[allocator]") {
    gcheap::register_current_thread();
    Epoch epoch;
    SECTION("storage kinds") {
        std::vector<double, gcheap::allocator<double>> numbers(1000);
        std::vector<Colour, gcheap::allocator<Colour>> colours(1000);
        std::basic_string<char, std::char_traits<char>, gcheap::allocator<char>> text(1000, 'x');
        std::deque<double, gcheap::allocator<double>> samples(100);
        std::vector<Obj*, gcheap::allocator<Obj*>> pointers(1000);
        std::map<long, double, std::less<long>, gcheap::allocator<std::pair<const long, double>>> index{{1, 2.0}};
        std::vector<long double, gcheap::allocator<long double>> wide(10);
        std::vector<Point, gcheap::allocator<Point>> points(1000);
        CHECK(is_noscan(numbers.data()));
        CHECK(is_noscan(colours.data()));
        CHECK(is_noscan(text.data()));
        CHECK(is_noscan(points.data()));  // gcheap::is_pointer_free specialised
        CHECK(is_noscan(&samples[0]));            // a block; the block map holds pointers, scanned
        CHECK_FALSE(is_noscan(pointers.data()));
        CHECK_FALSE(is_noscan(&*index.begin()));  // a node holds the tree's pointers
        // Over-aligned (16 on x86-64): from alloc_aligned, which is always scanned.
        if constexpr (alignof(long double) > 8) CHECK_FALSE(is_noscan(wide.data()));
        CHECK(reinterpret_cast<std::uintptr_t>(wide.data()) % alignof(long double) == 0);
    }
    SECTION("a double with an object's address for its bits keeps nothing alive") {
        // A thread makes finalizable objects and puts the bits of the hidden
        // ones' addresses in a vector<double>, pointers to the visible ones in
        // a vector<Obj*>; then it exits, so no stack or register holds them.
        // Scanned, the doubles would keep every hidden object; a stale word
        // elsewhere (globals are roots) may pin one of them, so there are 16.
        constexpr int kObjects = 16;
        static std::atomic<int> hidden_freed{0};
        static std::atomic<int> visible_freed{0};
        hidden_freed.store(0);
        visible_freed.store(0);
        std::vector<double, gcheap::allocator<double>> numbers;
        std::vector<Obj*, gcheap::allocator<Obj*>> pointers;
        numbers.reserve(64);
        pointers.reserve(64);
        std::atomic<bool> done{false};
        std::thread maker([&] {
            for (int i = 0; i < kObjects; ++i) {
                Obj* hidden = gcheap::make<Obj>();
                Obj* visible = gcheap::make<Obj>();
                gcheap::set_finalizer(hidden, [](void*) { hidden_freed.fetch_add(1); });
                gcheap::set_finalizer(visible, [](void*) { visible_freed.fetch_add(1); });
                numbers.push_back(std::bit_cast<double>(reinterpret_cast<std::uintptr_t>(hidden)));
                pointers.push_back(visible);
            }
            done.store(true);
        });
        join_after(maker, done);
        REQUIRE(is_noscan(numbers.data()));
        REQUIRE(drain_finalizers());
        CHECK(hidden_freed.load() >= kObjects - 2);
        CHECK(visible_freed.load() == 0);
        CHECK(numbers.size() == kObjects);
        gcheap::keep_alive(pointers.data());
    }
}

TEST_CASE("allocator: a dropped container's storage is reclaimed by the collector", "[allocator]") {
    gcheap::register_current_thread();
    gcheap::collect();
    const std::uint64_t before = gcheap::read_mem_stats().HeapAlloc;
    std::atomic<std::uint64_t> built{0};
    std::atomic<double> sum{0};
    std::atomic<bool> done{false};
    // Built and dropped by a thread that then exits, so that no stale word on
    // any stack points to the storage when this thread collects. A stale word
    // elsewhere can still pin one container (globals are roots, and glibc's
    // sigaction() copies uninitialised stack words into the struct sigaction
    // that Catch keeps in a global), so there are many small ones, and most
    // of their storage must go.
    std::thread worker([&] {
        struct Holder {  // a gcheap object with a container in it, never destroyed
            std::vector<long, gcheap::allocator<long>> values;
        };
        struct Group {
            std::vector<double, gcheap::allocator<double>> samples;
            std::map<long, long, std::less<long>, gcheap::allocator<std::pair<const long, long>>> index;
            std::unordered_map<long, double, std::hash<long>, std::equal_to<long>,
                               gcheap::allocator<std::pair<const long, double>>>
                table;
            Holder* holder;
        };
        {
            std::vector<Group, gcheap::allocator<Group>> groups(32);  // containers inside gcheap storage
            for (Group& group : groups) {
                group.samples.assign(32768, 1.5);  // 256 KiB each
                for (long i = 0; i < 1000; ++i) {
                    group.index.emplace(i, i);
                    group.table.emplace(i, 0.5);
                }
                group.holder = gcheap::make<Holder>();
                group.holder->values.assign(16384, 7);  // 128 KiB each
            }
            gcheap::collect();
            built.store(gcheap::read_mem_stats().HeapAlloc);
            // Used after the measurement: a container that is not used again
            // may be dead before its scope ends (its destructor does nothing
            // the compiler must keep), and collected already.
            double total = 0;
            for (const Group& group : groups) {
                total += group.samples.back() + static_cast<double>(group.index.rbegin()->second) +
                         group.table.at(999) + static_cast<double>(group.holder->values.back());
            }
            sum.store(total);
            // Each container is emptied by swapping it with a temporary that
            // is then destroyed, so that a stale word pinning `groups` (or a
            // Group) pins no container storage through the destroyed fields.
            for (Group& group : groups) {
                decltype(group.samples)().swap(group.samples);
                decltype(group.index)().swap(group.index);
                decltype(group.table)().swap(group.table);
                group.holder = nullptr;  // never destroyed: collected with its container's storage
            }
            decltype(groups)().swap(groups);
        }  // deallocate() did nothing: the storage is garbage now
        done.store(true);
    });
    join_after(worker, done);
    gcheap::collect();
    const std::uint64_t after = gcheap::read_mem_stats().HeapAlloc;
    const std::uint64_t containers = built.load() > before ? built.load() - before : 0;
    INFO("HeapAlloc before " << before << ", with the containers " << built.load() << ", after " << after);
    CHECK(sum.load() == 32 * (1.5 + 999 + 0.5 + 7));
    CHECK(containers >= 32u * ((256u << 10) + (128u << 10) + 1000 * (48 + 24)));
    CHECK(after <= before + containers / 10);
}

TEST_CASE("allocator: overflowing sizes throw and alignof(T) is honoured", "[allocator]") {
    constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
    gcheap::allocator<Obj*> scanned;
    gcheap::allocator<double> noscan;
    gcheap::traceable_allocator<Obj*> traceable;
    const std::size_t uncollectable_before = uncollectable_objects();
    CHECK_THROWS_AS(scanned.allocate(kMax / sizeof(Obj*) + 1), std::bad_array_new_length);
    CHECK_THROWS_AS(noscan.allocate(kMax / 2), std::bad_array_new_length);
    CHECK_THROWS_AS(traceable.allocate(kMax / sizeof(Obj*) + 1), std::bad_array_new_length);
    CHECK_THROWS_AS(scanned.allocate(kMax / sizeof(Obj*)), std::bad_alloc);  // no overflow, but too large
    CHECK_THROWS_AS(traceable.allocate(kMax / sizeof(Obj*)), std::bad_alloc);
    CHECK(uncollectable_objects() == uncollectable_before);  // a failed allocation registers nothing
    std::vector<Obj*, gcheap::allocator<Obj*>> v;
    CHECK_THROWS_AS(v.reserve(v.max_size() + 1), std::length_error);

    gcheap::allocator<Wide> wide;
    gcheap::traceable_allocator<Wide> traceable_wide;
    for (std::size_t n : std::initializer_list<std::size_t>{1, 3, 100, 1000}) {
        Wide* p = wide.allocate(n);
        Wide* q = traceable_wide.allocate(n);
        CHECK(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
        CHECK(reinterpret_cast<std::uintptr_t>(q) % 64 == 0);
        wide.deallocate(p, n);
        traceable_wide.deallocate(q, n);
    }
    std::vector<Wide, gcheap::allocator<Wide>> wides(7);
    CHECK(reinterpret_cast<std::uintptr_t>(wides.data()) % 64 == 0);
    CHECK(uncollectable_objects() == uncollectable_before);
}

TEST_CASE("allocator: containers copy, move and swap across allocator instances", "[allocator]") {
    gcheap::register_current_thread();
    Epoch epoch;
    using Vector = std::vector<Obj*, gcheap::allocator<Obj*>>;
    using List = std::list<Obj*, gcheap::allocator<Obj*>>;
    using Set = std::set<long, std::less<long>, gcheap::traceable_allocator<long>>;
    Vector a;
    for (std::uint64_t id = 0; id < 100; ++id) a.push_back(make_obj(id));
    Vector b(a, gcheap::allocator<Obj*>(gcheap::allocator<long>()));  // a rebound allocator converts back
    Vector c(std::move(b), gcheap::allocator<Obj*>());
    Vector d;
    d = c;
    Vector e;
    e = std::move(d);
    e.swap(c);
    CHECK(a == c);
    CHECK(a == e);
    CHECK(a.get_allocator() == List().get_allocator());
    List list(a.begin(), a.end());
    List other;
    other.splice(other.end(), list);  // allowed: the allocators compare equal
    CHECK(list.empty());
    CHECK(other.size() == 100);
    const std::size_t uncollectable_before = uncollectable_objects();
    {
        Set s{3, 1, 2};
        Set t;
        t = s;
        s.swap(t);
        Set u(std::move(t));
        CHECK(u.size() == 3);
        CHECK(uncollectable_objects() == uncollectable_before + 6);  // nodes of s and u
    }
    CHECK(uncollectable_objects() == uncollectable_before);
    REQUIRE(drain_finalizers());
    CHECK(damage(VectorOf<gcheap::allocator>{e}, 100) == "");
    CHECK(g_lost.load() == 0);
}

TEST_CASE("free_uncollectable: pointers that alloc_uncollectable did not return throw std::invalid_argument",
          "[allocator]") {
    void* ordinary = gcheap::alloc(32);
    void* uncollectable = gcheap::alloc_uncollectable(64);
    int local = 0;
    auto from_new = std::make_unique<long>(1);
    CHECK_THROWS_AS(gcheap::free_uncollectable(ordinary), std::invalid_argument);
    CHECK_THROWS_WITH(gcheap::free_uncollectable(ordinary), Catch::Contains("not an uncollectable object"));
    CHECK_THROWS_AS(gcheap::free_uncollectable(static_cast<char*>(uncollectable) + 8), std::invalid_argument);
    CHECK_THROWS_AS(gcheap::free_uncollectable(&local), std::invalid_argument);
    CHECK_THROWS_AS(gcheap::free_uncollectable(from_new.get()), std::invalid_argument);
    CHECK_NOTHROW(gcheap::free_uncollectable(nullptr));
    CHECK_NOTHROW(gcheap::free_uncollectable(uncollectable));
    CHECK_THROWS_AS(gcheap::free_uncollectable(uncollectable), std::invalid_argument);  // twice

    // traceable_allocator's storage is what free_uncollectable frees, and
    // gcheap::allocator's is not.
    gcheap::traceable_allocator<Obj*> traceable;
    gcheap::allocator<Obj*> collected;
    Obj** owned = traceable.allocate(10);
    Obj** garbage = collected.allocate(10);
    CHECK_NOTHROW(gcheap::free_uncollectable(owned));
    CHECK_THROWS_AS(gcheap::free_uncollectable(owned), std::invalid_argument);
    CHECK_THROWS_AS(gcheap::free_uncollectable(garbage), std::invalid_argument);
    gcheap::keep_alive(ordinary);
}
