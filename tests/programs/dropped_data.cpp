// The roots issue's programs, as a user writes them: a tree built in a helper
// and dropped, a large array dropped before the first collect(), and the
// README's example. Prints what survives each first collect(); run by
// tests/gc/stack_roots_test.cpp, which checks the figures.
#include <gcheap/gcheap.hpp>

#include <cstdio>

struct Tree {
    Tree* l;
    Tree* r;
};
Tree* g_tree;

Tree* build(int d) {
    if (!d) return nullptr;
    auto* t = gcheap::make<Tree>();
    t->l = build(d - 1);
    t->r = build(d - 1);
    return t;
}
void setup() { g_tree = build(20); }
void teardown() { g_tree = nullptr; }

struct Node {
    Node* next;
    long value;
};

int main(int argc, char** argv) {
    const bool array = argc > 1 && argv[1][0] == 'a';
    const bool readme = argc > 1 && argv[1][0] == 'r';
    if (array) {
        gcheap::alloc_noscan(256u << 20);
        gcheap::collect();
        std::printf("HeapAlloc %llu\n", static_cast<unsigned long long>(gcheap::read_mem_stats().HeapAlloc));
    } else if (readme) {
        Node* list = nullptr;
        for (long i = 0; i < 1000000; ++i) list = gcheap::make<Node>(Node{list, i});
        gcheap::alloc_noscan(1 << 20);
        gcheap::collect();
        std::printf("HeapAlloc %llu\n", static_cast<unsigned long long>(gcheap::read_mem_stats().HeapAlloc));
        gcheap::keep_alive(list);
    } else {
        gcheap::add_roots(&g_tree, &g_tree + 1);
        setup();
        teardown();
        gcheap::collect();
        std::printf("HeapObjects %llu\n", static_cast<unsigned long long>(gcheap::read_mem_stats().HeapObjects));
    }
}
