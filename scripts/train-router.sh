#!/bin/sh
# Remakes the shipped image-type router, assets/router.safetensors, from the
# real router training data (one sub-folder per class) and the synthetic
# diagrams and charts of data/router-extra (scripts/make-router-extra.py),
# with the default options written out. Every synthetic image counts WEIGHT
# (default 0.02) of a real one in training: chosen by the mean real-image
# cross-validation over seeds 0-2 among the weights tried (README, Router).
# Same data and options give the same bytes. Then the leave-one-source-out
# cross-validation of the README.
#   sh scripts/train-router.sh [VMED] [DATA] [EXTRA] [WEIGHT]
set -e
VMED=${1:-build/vmed}
DATA=${2:-${VMED_ROUTER_DATA:-../shared/data/router/train}}
EXTRA=${3:-data/router-extra}
WEIGHT=${4:-0.02}
"$VMED" router train --data "$DATA" --data "$EXTRA:$WEIGHT" --out assets/router.safetensors --seed 0 --epochs 400 --hidden 16
"$VMED" router cv --data "$DATA" --data "$EXTRA:$WEIGHT" --seed 0 --epochs 400 --hidden 16
