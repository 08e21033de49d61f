#!/bin/sh
# make demo: vmed end to end on built-in default models. Until trained demo
# weights exist, the defaults are tiny models with random weights that vmed
# writes itself, so every answer and caption below is noise.
set -e
VMED=${1:-build/vmed}
DEMO=${VMED_DEMO_DIR:-build/demo}
mkdir -p "$DEMO"
[ -f "$DEMO/llm/model.safetensors" ] || "$VMED" synth --out "$DEMO/llm" --preset tiny --seed 1
[ -f "$DEMO/med-git/model.safetensors" ] || "$VMED" synth --arch git --out "$DEMO/med-git" --preset tiny --seed 1
cat <<'TXT'
=====================================================================
 vmed demo. The models below are tiny networks with RANDOM weights
 that vmed wrote itself (vmed synth): their output is meaningless
 noise. The demo shows the machinery working: image decoding and CLIP
 preprocessing -> GIT captioner, and Alpaca prompt -> tokenizer ->
 LLaMA -> sampling -> streamed text.
 For real output, point vmed at the real checkpoints in the Hugging
 Face layout, e.g. a Med-GIT folder and medalpaca/medalpaca-7b:
     build/vmed caption --model /path/to/med-git xray.jpg
     build/vmed ask --llm /path/to/medalpaca-7b "your question"
 vmed is a research tool; it gives no medical advice.
=====================================================================
TXT
echo "--- vmed caption (Med-GIT architecture) on assets/samples/chest-xray.jpg:"
"$VMED" caption --model "$DEMO/med-git" --max-length 16 assets/samples/chest-xray.jpg
echo
echo "--- vmed ask (Med-Alpaca architecture):"
"$VMED" ask --llm "$DEMO/llm" --show-steps -n 40 --seed 1 \
    "What are the typical signs of pneumonia on a chest X-ray?"
