"""Plots bench/scavenger_rss output: RSS and heapUsage over time, scavenger on and off."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in ("seconds", "rss_mib", "heap_usage_mib", "heap_alloc_mib")}


def main(on_path, off_path, out_path):
    on, off = load(on_path), load(off_path)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    ax.plot(on["seconds"], on["rss_mib"], label="RSS, scavenger on", color="tab:blue")
    ax.plot(on["seconds"], on["heap_usage_mib"], label="heapUsage (HeapSys − HeapReleased), on", color="tab:blue", ls="--")
    ax.plot(off["seconds"], off["rss_mib"], label="RSS, scavenger off", color="tab:red")
    ax.plot(off["seconds"], off["heap_usage_mib"], label="heapUsage, off", color="tab:red", ls="--")
    ax.plot(on["seconds"], on["heap_alloc_mib"], label="HeapAlloc (live + unswept)", color="gray", lw=0.8)
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")
    ax.set_title("Live heap rises to 512 MiB, falls to 16 MiB: resident memory with and without the scavenger")
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
