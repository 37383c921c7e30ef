#!/usr/bin/env bash
# Shows the NVML inventory and the GPU allocator's choice for a 1-GPU flavor
# (default t4-small; pass `any` for any model, or another flavor name).
# Run it on a machine with an NVIDIA driver; without one it reports zero
# GPUs and a refusal, which is the expected behaviour there.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "(no nvidia-smi)"
cargo run -q -p spaceport-runtime --example gpu_check -- "${1:-any}"
