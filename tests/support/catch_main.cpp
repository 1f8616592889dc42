// The single Catch2 v2 main() of gcheap_tests. Test cases live in
// tests/runtime/*_test.cpp, tests/gc/*_test.cpp and tests/stress/*_test.cpp.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
