// A program whose first gcheap allocation happens before main(), in a
// dynamically initialised global (so the default heap is created, and the
// main thread registered, during static initialisation), with objects held
// in that global, in a thread_local of the main thread and in a function-
// local static. Exits 0 if every object survives collections that would
// reuse a lost object's slot; run by tests/gc/global_roots_test.cpp.
#include <gcheap/gcheap.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

struct Payload {
    std::uint64_t check;
    unsigned char bytes[120];
};

Payload* new_payload(std::uint64_t check) {
    auto* p = gcheap::make<Payload>();
    p->check = check;
    std::memset(p->bytes, static_cast<int>(check), sizeof p->bytes);
    return p;
}

bool intact(const Payload* p, std::uint64_t check) {
    if (p == nullptr || p->check != check) return false;
    for (unsigned char c : p->bytes) {
        if (c != static_cast<unsigned char>(check)) return false;
    }
    return true;
}

}  // namespace

Payload* g_before_main = new_payload(7);
thread_local Payload* t_main_thread;

Payload* lazily_made() {
    static Payload* made = new_payload(9);
    return made;
}

int main() {
    t_main_thread = new_payload(8);
    lazily_made();
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 20000; ++i) std::memset(gcheap::alloc(sizeof(Payload)), 0x11, sizeof(Payload));
        gcheap::collect();
    }
    const bool ok = intact(g_before_main, 7) && intact(t_main_thread, 8) && intact(lazily_made(), 9);
    std::printf("%s\n", ok ? "intact" : "LOST");
    return ok ? 0 : 1;
}
