#!/bin/sh
# The llama.cpp race of make bench (bench/run.sh calls it; alone: sh bench/race.sh BUILD):
# vmed bench and llama.cpp's llama-bench on the SAME GGUF files, pp512 and
# tg128 (llama-bench's default tests), 1 and 2 threads: LLaMA-7B's shape in
# Q4_0, Q8_0 and Q4_K_M, the ~134M shape in F16, Q8_0 and Q4_0, all random
# weights from vmed synth; then the time to the first token of each file, warm.
#
#   LLAMA_CPP_DIR     a llama.cpp build: the folder holding bin/llama-bench (a
#                     cmake build folder) or llama-bench itself; without it only
#                     vmed is measured. The quantized files come from
#                     `vmed convert --type` where vmed has that type, else from
#                     the same build's llama-quantize (both engines then read
#                     the same file, so either is fair).
#   VMED_BENCH_RACE_134M, VMED_BENCH_RACE_7B  the types raced for each shape
#                     (defaults "F16 Q8_0 Q4_0" and "Q4_0 Q8_0 Q4_K_M"; empty
#                     skips the shape: a 7B type takes ~15 minutes on 2 cores)
#   VMED_BENCH_7B=0   skip LLaMA-7B (it needs 30 GB of free disk while the
#                     files are made, 44 GB without BENCH_DIR's 7B folder;
#                     16 GB stay)
#   VMED_BENCH_REPS   repetitions (default 3 for 134M, 1 for 7B)
#   VMED_BENCH_KEEP=1 keep the 7B F16 GGUF (13.5 GB) and, if the race made it,
#                     the 7B HF folder, instead of deleting them after quantizing
#   VMED_BENCH_RACE_THREADS  thread counts (default "1 2")
#   VMED_BENCH_DIR    the other benchmarks' models (default BUILD/bench-models):
#                     its llama-7b-f16 folder is the 7B source when present
#   VMED_BENCH_PEAK_CTX  the context at which vmed's peak memory is measured
#                     on the 134M Q4_0 and 7B Q4_0 files (default 2048, the
#                     issue's; 0 skips it: the 7B run takes ~7 minutes)
# Files are cached in BUILD/bench; results in BUILD/bench-results/race*.jsonl.
set -e
BUILD=${1:-build}
LIMITS=${2:-}
VMED=$BUILD/vmed
FILES=$BUILD/bench
DIR=${VMED_BENCH_DIR:-$BUILD/bench-models}
OUT=$BUILD/bench-results
THREADS=${VMED_BENCH_RACE_THREADS:-1 2}
KEEP=${VMED_BENCH_KEEP:-0}
PY="python3 bench/race.py"
mkdir -p "$FILES" "$OUT"
: > "$OUT/race.jsonl"
: > "$OUT/race_first.jsonl"
: > "$OUT/race_peak.jsonl"
PEAK_CTX=${VMED_BENCH_PEAK_CTX:-2048}
if [ -z "$LIMITS" ]; then
    LIMITS=$OUT/limits.txt
    echo "== machine limits"
    "$BUILD/vmed_limits" "$(nproc)" | tee "$LIMITS"
fi
TMAX=1
for t in $THREADS; do [ "$t" -gt "$TMAX" ] && TMAX=$t; done

LB=
LQ=
if [ -z "$LLAMA_CPP_DIR" ]; then
    echo "== llama.cpp: not measured (set LLAMA_CPP_DIR to a llama.cpp build)"
else
    for d in "$LLAMA_CPP_DIR/bin" "$LLAMA_CPP_DIR" "$LLAMA_CPP_DIR/build/bin"; do
        if [ -x "$d/llama-bench" ]; then
            LB=$d/llama-bench
            [ -x "$d/llama-quantize" ] && LQ=$d/llama-quantize
            break
        fi
    done
    if [ -z "$LB" ]; then
        echo "== llama.cpp: not measured (LLAMA_CPP_DIR=$LLAMA_CPP_DIR has no bin/llama-bench: set it to a llama.cpp build)"
    else
        echo "== llama.cpp: $LB${LQ:+ and $LQ}"
    fi
fi

# Which quantized types vmed convert writes: try each on a tiny model.
[ -f "$FILES/probe-tiny/model.safetensors" ] || "$VMED" synth --out "$FILES/probe-tiny" --seed 1 > /dev/null
VMED_TYPES=
for ty in q8_0 q4_0 q4_k_m; do
    if "$VMED" convert "$FILES/probe-tiny" "$FILES/probe-tiny.gguf" --type "$ty" > /dev/null 2>&1; then
        VMED_TYPES="$VMED_TYPES $ty"
    fi
done
rm -f "$FILES/probe-tiny.gguf"
echo "== vmed convert writes: f16${VMED_TYPES:- (no quantized type yet)}"
vmed_writes() { case " $VMED_TYPES " in *" $1 "*) return 0 ;; esac; return 1; }
lower() { echo "$1" | tr 'A-Z' 'a-z'; }

# needs FILE TYPE: the file is missing, or llama-quantize made it and vmed now can
needs() {
    [ ! -f "$1" ] && return 0
    [ "$(cat "$1.by" 2>/dev/null)" = llama-quantize ] && vmed_writes "$(lower "$2")" && return 0
    return 1
}

# make_file HF_DIR F16_GGUF TYPE OUT: vmed convert, else llama-quantize of the F16 GGUF
make_file() {
    needs "$4" "$3" || return 0
    ty=$(lower "$3")
    if vmed_writes "$ty"; then
        echo "== $4: vmed convert --type $ty"
        if "$VMED" convert "$1" "$4" --type "$ty"; then
            echo "vmed convert" > "$4.by"
            return 0
        fi
    fi
    [ -f "$4" ] && return 0
    if [ -n "$LQ" ]; then
        if [ ! -f "$2" ]; then
            echo "== $2: vmed convert --type f16"
            "$VMED" convert "$1" "$2" --type f16
        fi
        echo "== $4: llama-quantize $3 (vmed convert has no --type $ty yet)"
        if "$LQ" "$2" "$4.tmp" "$3" > "$OUT/quantize.log" 2>&1; then
            mv "$4.tmp" "$4"
            echo llama-quantize > "$4.by"
            return 0
        fi
        rm -f "$4.tmp"
        echo "== llama-quantize failed: see $OUT/quantize.log"
        return 1
    fi
    echo "== $4: not made (vmed convert has no --type $ty yet, and there is no llama-quantize in LLAMA_CPP_DIR)"
    return 1
}

# race NAME TYPE REPS: both engines, every thread count, pp512 + tg128
race() {
    f=$FILES/$1-$(lower "$2").gguf
    [ -f "$f" ] || return 0
    for t in $THREADS; do
        echo "== race $1 $2, $t thread(s), pp512 tg128, $3 rep(s)"
        $PY run "$OUT/race.jsonl" vmed "$1" "$2" "$t" -- \
            "$VMED" bench --model "$f" -t "$t" -p 512 -n 128 -r "$3" --json
        [ -z "$LB" ] || $PY run "$OUT/race.jsonl" llama.cpp "$1" "$2" "$t" -- \
            "$LB" -m "$f" -t "$t" -p 512 -n 128 -r "$3" -o json
    done
}

# first NAME TYPE FILE: time to the first token; a first run warms the page cache
first() {
    [ -f "$3" ] || return 0
    echo "== time to first token, $1 $2, $TMAX thread(s), warm"
    "$VMED" bench --model "$3" -t "$TMAX" -p 0 -n 1 -r 1 > /dev/null 2>&1 || true
    $PY first "$OUT/race_first.jsonl" vmed "$1" "$2" -- "$VMED" bench --model "$3" -t "$TMAX" -p 0 -n 1 -r 1 --json
    [ -z "$LB" ] || $PY first "$OUT/race_first.jsonl" llama.cpp "$1" "$2" -- \
        "$LB" -m "$3" -t "$TMAX" -p 0 -n 1 -r 1 --no-warmup -o json
}

# peak NAME TYPE FILE: vmed's peak resident memory with a context of PEAK_CTX
# filled by a prompt, against the file + KV cache
peak() {
    [ -f "$3" ] && [ "$PEAK_CTX" != 0 ] || return 0
    echo "== peak memory, $1 $2, context $PEAK_CTX, $TMAX thread(s)"
    $PY peak "$OUT/race_peak.jsonl" "$1" "$2" "$3" -- \
        "$VMED" bench --model "$3" -t "$TMAX" -p "$((PEAK_CTX - 1))" -n 0 -r 1 --json
}

# ~134M: F16, Q8_0 and Q4_0 from one synth folder (kept: 270 MB)
T134=${VMED_BENCH_RACE_134M-F16 Q8_0 Q4_0}
if [ -n "$T134" ]; then
    S=$FILES/llama-134m-hf
    [ -f "$S/model.safetensors" ] || "$VMED" synth --out "$S" --preset 134m --dtype f16 --seed 1
    F16=$FILES/llama-134m-f16.gguf
    [ -f "$F16" ] || "$VMED" convert "$S" "$F16" --type f16
    for ty in $T134; do
        [ "$ty" = F16 ] || make_file "$S" "$F16" "$ty" "$FILES/llama-134m-$(lower $ty).gguf" || true
        race llama-134m "$ty" "${VMED_BENCH_REPS:-3}"
        first llama-134m "$ty" "$FILES/llama-134m-$(lower $ty).gguf"
        [ "$ty" != Q4_0 ] || peak llama-134m Q4_0 "$FILES/llama-134m-q4_0.gguf"
    done
fi

# LLaMA-7B: Q4_0, Q8_0 and Q4_K_M; the F16 GGUF is an intermediate (13.5 GB)
T7B=${VMED_BENCH_RACE_7B-Q4_0 Q8_0 Q4_K_M}
if [ "${VMED_BENCH_7B:-1}" != 0 ] && [ -n "$T7B" ]; then
    F16=$FILES/llama-7b-f16.gguf
    todo=
    for ty in $T7B; do needs "$FILES/llama-7b-$(lower $ty).gguf" "$ty" && todo="$todo $ty"; done
    free_kb=$(df -Pk "$FILES" | awk 'NR==2 {print $4}')
    made_hf=
    need_kb=30000000 # the F16 GGUF and the three quantized files
    S=$DIR/llama-7b-f16
    [ -f "$S/model.safetensors" ] || S=$FILES/llama-7b-hf
    [ -f "$S/model.safetensors" ] || need_kb=44000000
    if [ -n "$todo" ] && [ -z "$LQ" ] && [ -z "$VMED_TYPES" ]; then
        echo "== LLaMA-7B:$todo not made (vmed convert has no quantized type yet, and there is no llama-quantize in LLAMA_CPP_DIR)"
        todo=
    elif [ -n "$todo" ] && [ "$free_kb" -lt "$need_kb" ]; then
        echo "== skipping the LLaMA-7B files ($todo): making them needs $((need_kb / 1000000)) GB of free disk in $FILES"
        todo=
    elif [ -n "$todo" ] && [ ! -f "$S/model.safetensors" ]; then
        echo "== writing LLaMA-7B (random weights)"
        "$VMED" synth --out "$S" --preset 7b --dtype f16 --seed 1
        made_hf=1
    fi
    for ty in $T7B; do
        f=$FILES/llama-7b-$(lower $ty).gguf
        case " $todo " in *" $ty "*) make_file "$S" "$F16" "$ty" "$f" || true ;; esac
        race llama-7b "$ty" "${VMED_BENCH_REPS:-1}"
        first llama-7b "$ty" "$f"
        [ "$ty" != Q4_0 ] || peak llama-7b Q4_0 "$f"
    done
    # a quantized file made by llama-quantize leaves the F16 GGUF, which vmed computes with
    first llama-7b F16 "$F16"
    if [ "$KEEP" != 1 ]; then
        rm -f "$F16"
        [ -z "$made_hf" ] || rm -rf "$FILES/llama-7b-hf"
    fi
fi

echo "== race"
$PY table "$LIMITS" "$OUT/race.jsonl" "$OUT/race_first.jsonl" "$FILES"
