// gcheap_test_plugin: a shared object that tests/gc/data_segments_test.cpp
// dlopens and dlcloses, to see its writable segments and its TLS block appear
// in and vanish from gcheap's enumeration. It links to nothing of gcheap's, and
// it must stay unloadable by dlclose: no inline variables, template statics or
// function-local statics (GCC makes them STB_GNU_UNIQUE, which pins the object
// in memory) and no thread_local with a destructor.
#include <cstdint>

namespace {

void* bss_slot;                                                     // zero-initialised: .bss
void* data_slot = reinterpret_cast<void*>(std::uintptr_t{0x5eed});  // constant, no relocation: .data
thread_local void* tls_slot;                                        // .tbss

}  // namespace

extern "C" {

[[gnu::visibility("default")]] void** gcheap_test_plugin_bss_slot() { return &bss_slot; }
[[gnu::visibility("default")]] void** gcheap_test_plugin_data_slot() { return &data_slot; }
// Touching the slot is what allocates the plugin's TLS block in the calling
// thread (glibc allocates a dlopen'd module's block lazily).
[[gnu::visibility("default")]] void** gcheap_test_plugin_tls_slot() { return &tls_slot; }

}  // extern "C"
