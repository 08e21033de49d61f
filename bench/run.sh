#!/bin/sh
# make bench: decode (tg) and prefill (pp) speed of vmed on random-weight
# LLaMA models of real shapes, against the machine's own limits measured in
# the same run: memory bandwidth for decoding, peak f32 FLOP/s for prefill.
#
#   VMED_BENCH_DIR   where the synthetic models go (default BUILD/bench-models)
#   VMED_BENCH_7B=0  skip the LLaMA-7B F16 model (13.5 GB on disk, ~14 GB RAM)
#   VMED_BENCH_REPS  repetitions (default 3 for 134M, 1 for 7B)
#   LLAMA_CPP_DIR    a llama.cpp build (the folder with bin/llama-bench) for the
#                    race on the same GGUF files (bench/race.sh, which says what
#                    else it reads: VMED_BENCH_KEEP, VMED_BENCH_RACE_THREADS,
#                    VMED_BENCH_RACE_134M, VMED_BENCH_RACE_7B);
#                    without it vmed's figures alone
#   VMED_BENCH_RACE=0 skip the race
#   VMED_BENCH_PYTHON a python with torch, transformers and pillow for the
#                    PyTorch reference of the caption benchmark; without it the
#                    bench makes a virtualenv in BUILD/bench-venv from PyPI
#                    (current torch and transformers, several GB)
#   VMED_BENCH_TORCH=0  skip the PyTorch reference
set -e
BUILD=${1:-build}
VMED=$BUILD/vmed
DIR=${VMED_BENCH_DIR:-$BUILD/bench-models}
OUT=$BUILD/bench-results
NPROC=$(nproc)
mkdir -p "$DIR" "$OUT"
: > "$OUT/results.jsonl"

echo "== machine limits"
"$BUILD/vmed_limits" "$NPROC" | tee "$OUT/limits.txt"

run_model() { # name preset dtype pp tg reps
    name=$1
    if [ ! -f "$DIR/$name/model.safetensors" ]; then
        echo "== writing $name (random weights)"
        "$VMED" synth --out "$DIR/$name" --preset "$2" --dtype "$3" --seed 1
    fi
    t=1
    while [ "$t" -le "$NPROC" ]; do
        echo "== $name, $t thread(s), pp$4 tg$5, $6 rep(s)"
        "$VMED" bench --model "$DIR/$name" -t "$t" -p "$4" -n "$5" -r "$6" --json | tee -a "$OUT/results.jsonl"
        t=$((t + 1))
    done
}

run_model llama-134m-f32 134m f32 512 128 "${VMED_BENCH_REPS:-3}"
if [ "${VMED_BENCH_7B:-1}" != 0 ]; then
    free_kb=$(df -Pk "$DIR" | awk 'NR==2 {print $4}')
    if [ "$free_kb" -lt 15000000 ] && [ ! -f "$DIR/llama-7b-f16/model.safetensors" ]; then
        echo "== skipping LLaMA-7B F16: it needs 14 GB of free disk in $DIR"
    else
        # pp128/tg32: a 7B prefill of 512 tokens takes minutes on two cores
        run_model llama-7b-f16 7b f16 128 32 "${VMED_BENCH_REPS:-1}"
    fi
fi

# Med-GIT: image-to-caption latency at git-base's shape, vmed against HF
# transformers on PyTorch's CPU backend, same checkpoint, image and threads.
IMG=assets/samples/chest-xray.jpg
: > "$OUT/caption.jsonl"
for dt in f32 f16; do
    name=git-base-$dt
    [ -f "$DIR/$name/model.safetensors" ] || "$VMED" synth --arch git --preset base --dtype "$dt" --out "$DIR/$name" --seed 1
    t=1
    while [ "$t" -le "$NPROC" ]; do
        echo "== $name caption, $t thread(s)"
        "$VMED" bench --model "$DIR/$name" --image "$IMG" -t "$t" -n 20 -r 5 --json | tee -a "$OUT/caption.jsonl"
        t=$((t + 1))
    done
done
# Q8_0: GIT checkpoints are float only, so the F32 folder requantized at load.
t=1
while [ "$t" -le "$NPROC" ]; do
    echo "== git-base-f32 --quantize q8_0 caption, $t thread(s)"
    "$VMED" bench --model "$DIR/git-base-f32" --image "$IMG" -t "$t" -n 20 -r 5 --quantize q8_0 --json |
        tee -a "$OUT/caption.jsonl"
    t=$((t + 1))
done
PY=${VMED_BENCH_PYTHON:-}
if [ "${VMED_BENCH_TORCH:-1}" != 0 ] && [ -z "$PY" ]; then
    if [ ! -x "$BUILD/bench-venv/bin/python" ] || ! "$BUILD/bench-venv/bin/python" -c "import torch, torchvision, transformers, PIL" 2>/dev/null; then
        echo "== making $BUILD/bench-venv with torch, transformers and pillow from PyPI (once; several GB)"
        python3 -m venv "$BUILD/bench-venv" && "$BUILD/bench-venv/bin/pip" install -q torch torchvision transformers pillow || true
    fi
    PY=$BUILD/bench-venv/bin/python
fi
: > "$OUT/caption_torch.jsonl"
if [ "${VMED_BENCH_TORCH:-1}" != 0 ] && "$PY" -c "import torch, torchvision, transformers, PIL" 2>/dev/null; then
    t=1
    while [ "$t" -le "$NPROC" ]; do
        echo "== PyTorch reference git-base-f32 caption, $t thread(s)"
        "$PY" bench/git_bench.py "$DIR/git-base-f32" "$IMG" "$t" 20 5 2>/dev/null | tee -a "$OUT/caption_torch.jsonl"
        t=$((t + 1))
    done
else
    echo "== reference: no python with torch + transformers (set VMED_BENCH_PYTHON), so no PyTorch figures"
fi

# DePlot: chart-to-table latency at google/deplot's shape (Pix2Struct-base,
# 2048 patches), vmed against HF on PyTorch, same checkpoint, chart, threads.
CHART=assets/samples/papule-bar-chart.png
: > "$OUT/chart.jsonl"
: > "$OUT/chart_torch.jsonl"
[ -f "$DIR/deplot-base-f32/model.safetensors" ] || "$VMED" synth --arch pix2struct --preset base --out "$DIR/deplot-base-f32" --seed 1
t=1
while [ "$t" -le "$NPROC" ]; do
    echo "== deplot-base-f32 chart, $t thread(s)"
    "$VMED" bench --model "$DIR/deplot-base-f32" --image "$CHART" -t "$t" -n 20 -r 3 --json | tee -a "$OUT/chart.jsonl"
    if [ "${VMED_BENCH_TORCH:-1}" != 0 ] && "$PY" -c "import torch, torchvision, transformers, PIL" 2>/dev/null; then
        echo "== PyTorch reference deplot-base-f32 chart, $t thread(s)"
        "$PY" bench/deplot_bench.py "$DIR/deplot-base-f32" "$CHART" "$t" 20 3 2>/dev/null | tee -a "$OUT/chart_torch.jsonl"
    fi
    t=$((t + 1))
done

# The llama.cpp race: vmed and llama-bench on the same GGUF files (bench/race.sh).
if [ "${VMED_BENCH_RACE:-1}" != 0 ]; then
    sh bench/race.sh "$BUILD" "$OUT/limits.txt"
else
    echo "== race against llama.cpp skipped (VMED_BENCH_RACE=0)"
fi

echo "== summary"
python3 - "$OUT/limits.txt" "$OUT/results.jsonl" "$OUT/caption.jsonl" "$OUT/caption_torch.jsonl" "$OUT/chart.jsonl" "$OUT/chart_torch.jsonl" <<'PY'
import json, re, sys
bw, peak = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"membw threads (\d+): ([\d.]+) GB/s", line)
    if m: bw[int(m[1])] = float(m[2])
    m = re.match(r"peak threads (\d+): ([\d.]+) GFLOP/s", line)
    if m: peak[int(m[1])] = float(m[2])
print(f"{'model':<16}{'thr':>4}{'pp tok/s':>16}{'GFLOP/s':>9}{'% peak':>8}{'tg tok/s':>16}{'GB/s':>7}{'% bw':>7}{'ceiling':>9}{'RSS GB':>8}")
for line in open(sys.argv[2]):
    r = json.loads(line)
    t = r["threads"]
    wb = r["weight_bytes_per_token"]
    gflops = r["pp_tps"] * r["pp_flops_per_token"] / 1e9   # layers, causal attention, LM head once
    gbs = r["tg_tps"] * wb / 1e9
    ceil = bw.get(t, 0) * 1e9 / wb if t in bw else 0
    pk = peak.get(t, 0)
    name = r["model"].rstrip("/").split("/")[-1]
    print(f"{name:<16}{t:>4}{r['pp_tps']:>9.2f} ± {r['pp_sd']:<5.2f}{gflops:>8.1f}{100*gflops/pk if pk else 0:>7.0f}%"
          f"{r['tg_tps']:>9.2f} ± {r['tg_sd']:<5.2f}{gbs:>6.1f}{100*gbs/bw.get(t,1e9):>6.0f}%{ceil:>9.2f}{r['peak_rss_bytes']/1e9:>8.2f}")
print("ceiling = measured bandwidth / weight bytes per token (tokens/s); % peak = prefill GFLOP/s / measured FMA peak,")
print("prefill flops counted as vmed bench reports them: 2 per layer weight, causal attention, the LM head once")
def race(title, key, ours, theirs):
    """vmed's latency rows against PyTorch's for the same thread count."""
    ref = {}
    for line in open(theirs):
        r = json.loads(line)
        ref[r["threads"]] = r
    print()
    print(f"{title:<52}{'thr':>4}{'vmed s':>16}{'PyTorch s':>16}{'vmed/PyTorch':>14}")
    others = False
    for line in open(ours):
        r = json.loads(line)
        others = others or r.get("dtype", "F32") != "F32"
        name = r["model"].rstrip("/").split("/")[-1]
        if r.get("dtype") == "Q8_0": name += " --quantize q8_0"
        t = ref.get(r["threads"])
        cell = f"{t[key + '_s']:.3f} ± {t[key + '_sd']:.3f}" if t else "-"
        ratio = f"{r[key + '_s'] / t[key + '_s']:.2f}x" if t else "-"
        print(f"{name:<52}{r['threads']:>4}{r[key + '_s']:>9.3f} ± {r[key + '_sd']:<5.3f}{cell:>16}{ratio:>14}")
    if ref:
        v = next(iter(ref.values()))
        print(f"PyTorch: torch {v['torch']}, transformers {v['transformers']}, F32" +
              (" (the other rows are against it too)" if others else ""))


race("caption (load+preprocess+encode+20 tokens)", "caption", sys.argv[3], sys.argv[4])
race("chart (load+header+2048 patches+encode+20 tokens)", "chart", sys.argv[5], sys.argv[6])
PY
if [ "${VMED_BENCH_RACE:-1}" != 0 ]; then
    echo
    python3 bench/race.py table "$OUT/limits.txt" "$OUT/race.jsonl" "$OUT/race_first.jsonl" "$BUILD/bench"
fi
