#!/usr/bin/env bash
# The CUDA backend on a real GPU, in one go, under 8 minutes:
#   1. validation/cuda_parity.py: every parity check of the simulator tests, larger sizes,
#      both GEMMs (CuPy's cuBLAS and the tiled numba.cuda kernel);
#   2. benchmarks/gpu_bench.py: one training step of 784-800-10 (T=8, B=128 and 1024) and
#      700-128-20 (T=1000, B=128) in stlsim (backend="cuda"), PyTorch and SpikingJelly.
# Writes benchmarks/results/gpu.json (and copies it, with the logs, to $OUT when set).
#
# Needs: an NVIDIA GPU, python3 with numpy, numba, numba-cuda, scipy, h5py, matplotlib;
# CuPy, PyTorch and SpikingJelly for the GEMM choice and the comparisons (each one missing
# costs only its figures). stlsim itself runs from this checkout (PYTHONPATH), not installed.
# Packages the machine lacks travel as wheels in .whl/ at the repository root, installed
# here into /tmp/stlsim-site with --no-deps; see docs/cuda.md ("Running on a GPU").
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
logs=/tmp/stlsim-gpu
mkdir -p "$logs" benchmarks/results

if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/stlsim-site .whl/*.whl && export PYTHONPATH="/tmp/stlsim-site${PYTHONPATH:+:$PYTHONPATH}" \
    || echo "note: installing the carried wheels failed; going on without them"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
  > "$logs/nvidia-smi.txt" 2>&1 || echo "nvidia-smi unavailable" > "$logs/nvidia-smi.txt"
python3 - <<'EOF' 2>&1 | tee "$logs/versions.txt"
import importlib
for name in ("numpy", "numba", "numba.cuda", "cupy", "torch", "spikingjelly"):
    try:
        module = importlib.import_module(name)
        print(f"{name}: {getattr(module, '__version__', getattr(module, 'implementation', '?'))}")
    except Exception as err:
        print(f"{name}: not importable ({type(err).__name__}: {err})")
EOF

echo "== parity (validation/cuda_parity.py) at $(elapsed) s"
timeout 200 python3 validation/cuda_parity.py --json "$logs/parity.json" > "$logs/parity.log" 2>&1
parity_rc=$?
tail -n 4 "$logs/parity.log"
grep -E "^FAIL" "$logs/parity.log" | head -n 20

budget=$(( 450 - $(elapsed) ))
echo "== benchmarks (benchmarks/gpu_bench.py, ${budget} s budget) at $(elapsed) s"
timeout $(( budget + 20 )) python3 benchmarks/gpu_bench.py --out benchmarks/results/gpu.json \
  --budget "$budget" --parity "$logs/parity.json" --parity-rc "$parity_rc" \
  --gpu-info "$logs/nvidia-smi.txt" 2>&1 | tee "$logs/bench.log"

if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp benchmarks/results/gpu.json "$logs"/parity.log "$logs"/bench.log "$logs"/versions.txt "$OUT"/ 2>/dev/null
fi
echo "== done in $(elapsed) s; parity exit status $parity_rc"
exit "$parity_rc"
