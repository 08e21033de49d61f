#!/bin/sh
# Remakes the shipped image-type router, assets/router.safetensors, from the
# real router training data (one sub-folder per class) and the synthetic
# diagrams and charts of data/router-extra (scripts/make-router-extra.py),
# with the default options written out. Same data and options give the same
# bytes. Then the leave-one-source-out cross-validation of the README.
#   sh scripts/train-router.sh [VMED] [DATA] [EXTRA]
set -e
VMED=${1:-build/vmed}
DATA=${2:-${VMED_ROUTER_DATA:-../shared/data/router/train}}
EXTRA=${3:-data/router-extra}
"$VMED" router train --data "$DATA" --data "$EXTRA" --out assets/router.safetensors --seed 0 --epochs 400 --hidden 16
"$VMED" router cv --data "$DATA" --data "$EXTRA" --seed 0 --epochs 400 --hidden 16
