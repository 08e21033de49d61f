#!/bin/sh
# make demo: the text path of vmed end to end on a built-in default model.
# Until trained demo weights exist, the default is a tiny LLaMA with random
# weights that vmed writes itself, so the answer below is noise.
set -e
VMED=${1:-build/vmed}
DEMO=${VMED_DEMO_DIR:-build/demo}
if [ ! -f "$DEMO/llm/model.safetensors" ]; then
    mkdir -p "$DEMO"
    "$VMED" synth --out "$DEMO/llm" --preset tiny --seed 1
fi
cat <<'TXT'
=====================================================================
 vmed demo. The model below is a tiny LLaMA with RANDOM weights that
 vmed wrote itself (vmed synth): its answer is meaningless noise. It
 shows the pipeline working: Alpaca prompt -> tokenizer -> LLaMA ->
 sampling -> streamed text.
 For real answers, point vmed at a Med-Alpaca (or any LLaMA) folder in
 the Hugging Face layout, e.g. medalpaca/medalpaca-7b:
     build/vmed ask --llm /path/to/medalpaca-7b "your question"
=====================================================================
TXT
"$VMED" ask --llm "$DEMO/llm" --show-steps -n 40 --seed 1 \
    "What are the typical signs of pneumonia on a chest X-ray?"
