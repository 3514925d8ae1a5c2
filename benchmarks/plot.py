"""Bar chart of the benchmark medians (one panel per workload and dtype)."""
from __future__ import annotations


def plot(results: dict, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 1.0 + 1.9 * len(runs)), squeeze=False)
    for ax, entry in zip(axes[:, 0], runs):
        items = sorted(((k, v["median_ms"]) for k, v in entry["times"].items() if not k.startswith("gemm")),
                       key=lambda kv: kv[1])
        names = [k for k, _ in items]
        values = [v for _, v in items]
        colors = ["tab:red" if n.startswith("stlsim") else "tab:gray" for n in names]
        ax.barh(names, values, color=colors)
        gemm = entry["times"].get("gemm-numpy", {}).get("median_ms")
        if gemm:
            ax.axvline(gemm, color="k", ls="--", lw=1, label=f"GEMM only (numpy) {gemm:.2f} ms")
            ax.legend(loc="lower right", fontsize=7)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.1f}", va="center", fontsize=7)
        ax.set_xscale("log")
        ax.set_title(f"{entry['label']}, {entry['dtype']} (load {entry['load_before'][0]})", fontsize=9)
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("one training step (forward + backward), median ms, log scale")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
