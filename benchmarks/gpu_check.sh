#!/usr/bin/env bash
# GPU correctness, AMP and throughput check, run on a lent GPU machine (see docs/performance.md).
# Needs: torch with CUDA, numpy, scipy, scikit-image, pyyaml, tqdm, matplotlib; nibabel/pydicom wheels in .whl/.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl; fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
echo "== step time vs bare passes, all methods, 192 px batch 32, bf16"
python3 benchmarks/bench_step.py --device cuda --size 192 --batch 32 --width 32 --amp bf16 --reps 10 --count-ops | tee "$OUT/step_192.txt"
echo "== SuperCL and MACL at 512 px batch 16, bf16"
python3 benchmarks/bench_step.py --device cuda --size 512 --batch 16 --width 32 --amp bf16 --reps 10 --methods supercl,macl | tee "$OUT/step_512.txt"
echo "== precision and memory format vs fp32, 192 px batch 32"
python3 benchmarks/bench_amp.py --device cuda --size 192 --batch 32 --reps 10 --methods finetune,supercl,macl | tee "$OUT/amp_192.txt"
echo "== throughput levers (bf16, channels-last, compile, CUDA graphs), batch scan, profile: SuperCL and MACL, 512 px"
timeout 900 python3 benchmarks/gpu_throughput.py --device cuda --size 512 --batch 16 --width 32 --batches 16 32 64 --profile | tee "$OUT/throughput_512.txt"
echo "== the speed-ups keep the step's loss and gradients (torch.compile included)"
MEDSSL_TEST_COMPILE=1 timeout 600 python3 -m pytest -q tests/test_speedups.py 2>&1 | tee "$OUT/speedups.txt" || echo "pytest not available"
echo "== loader (scipy, torch, torch + lattice noise) vs GPU step, 512 px batch 16"
timeout 300 python3 benchmarks/bench_loader.py --device cuda --size 512 --batch 16 --workers 8 --batches 4 --methods supercl,macl,pcl --backend all | tee "$OUT/loader_512.txt"
echo "== end to end on the GPU: prepare, MACL pre-training (bf16), fine-tuning (fp16 + GradScaler, channels_last)"
M="python3 -m medssl.cli.main"
$M prepare synthetic builtin /tmp/p --no-progress && \
$M pretrain --method macl --data /tmp/p --out /tmp/pre --epochs 2 --image-size 64 --batch-size 16 --device cuda --amp bf16 --no-progress && \
$M finetune --data /tmp/p --init /tmp/pre/pretrain.pt --out /tmp/ft --epochs 3 --batch-size 8 --device cuda --amp fp16 --no-progress --set train.channels_last=true 2>&1 | tee "$OUT/e2e.txt"
cp /tmp/ft/run.json "$OUT/e2e_run.json" 2>/dev/null || true
