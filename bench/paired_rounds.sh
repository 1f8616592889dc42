#!/usr/bin/env bash
# Paired rounds of the 16-byte target (docs/performance.md, "The 16-byte
# target"): each round runs gcheap_api/alloc/16 and glibc/malloc_free/16
# interleaved in one alloc_bench process and prints both medians and their
# ratio (below 1: gcheap's public allocation, collection included, is
# cheaper than a malloc+free pair). On a noisy host only the ratio within a
# round means anything.
#
# Usage: bench/paired_rounds.sh ALLOC_BENCH [ROUNDS [THREADS]]
#   e.g. bench/paired_rounds.sh build/release/bench/alloc_bench 10 1
set -euo pipefail

bench=${1:?usage: paired_rounds.sh ALLOC_BENCH [ROUNDS [THREADS]]}
rounds=${2:-10}
threads=${3:-1}

for ((r = 1; r <= rounds; ++r)); do
    "$bench" --benchmark_filter="gcheap_api/alloc/16/.*threads:${threads}\$|glibc/malloc_free/16/threads:${threads}\$" \
        --benchmark_min_time=0.15 --benchmark_repetitions=6 --benchmark_enable_random_interleaving=true \
        --benchmark_report_aggregates_only=true 2>/dev/null |
        awk '/_median/ { v = $NF; sub(/ns_per_obj=/, "", v); sub(/ns/, "", v)
                         if ($1 ~ /gcheap_api/) a = v; else g = v }
             END { printf "gcheap_api %.2f ns  glibc %.2f ns  ratio %.3f\n", a, g, a / g }'
done
