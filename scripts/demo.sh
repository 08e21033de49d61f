#!/bin/sh
# make demo: vmed end to end on built-in default models. Until trained demo
# weights exist, the defaults are tiny models with random weights that vmed
# writes itself, so every caption, table and answer below is noise.
set -e
VMED=${1:-build/vmed}
DEMO=${VMED_DEMO_DIR:-build/demo}
mkdir -p "$DEMO"
[ -f "$DEMO/llm/model.safetensors" ] || "$VMED" synth --out "$DEMO/llm" --preset tiny --seed 1
[ -f "$DEMO/med-git/model.safetensors" ] || "$VMED" synth --arch git --out "$DEMO/med-git" --preset tiny --seed 1
[ -f "$DEMO/deplot/spiece.model" ] || "$VMED" synth --arch pix2struct --out "$DEMO/deplot" --preset tiny --seed 1
cat <<'TXT'
=====================================================================
 vmed demo. The LLM, Med-GIT and DePlot below are tiny networks with
 RANDOM weights that vmed wrote itself (vmed synth): their captions,
 tables and answers are MEANINGLESS noise. The router is real (trained
 by vmed on labelled images). The demo shows the machinery: image ->
 router -> visual expert -> Alpaca prompt -> LLaMA -> streamed answer.
 For real output, get the real checkpoints (Hugging Face layout):
     build/vmed pull medalpaca/medalpaca-7b --role llm
     build/vmed pull google/deplot --role deplot
     (and a Med-GIT folder, --role med-git)
 then: build/vmed ask --image xray.jpg "What is seen and what should be done?"
 vmed is a research tool; it gives no medical advice.
=====================================================================
TXT
ask() {
    echo
    echo "##### vmed ask $*"
    "$VMED" ask --llm "$DEMO/llm" --med-git "$DEMO/med-git" --deplot "$DEMO/deplot" \
        --show-steps -n 24 --seed 1 "$@"
}
ask --image assets/samples/chest-xray.jpg "What is seen in the X-ray and what should be done?"
ask --image assets/samples/papule-bar-chart.png "How effective is this treatment on papule?"
ask --image assets/samples/pipeline-diagram.png "What does this figure show?"
ask "What are the typical signs of pneumonia on a chest X-ray?"
