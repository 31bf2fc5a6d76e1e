#!/usr/bin/env bash
# Training data of kgc's default IE adapter for SmolLM2-135M-Instruct, from ../shared/datasets.
# English and Chinese; NER, RE and EE; schema chunks (split_num) and negatives as IEPile recommends,
# with pure-negative chunks kept rare by a low negative ratio for the many-label WebNLG schema.
set -euo pipefail
D=${KGC_SHARED:-$(cd "$(dirname "$0")/../../../.." && pwd)/shared}/datasets
OUT=${1:-runs/smollm2-ie/data}
mkdir -p "$OUT/parts"
c() { # name task language split limit extra...
    local name=$1 task=$2 lang=$3 split=$4 limit=$5; shift 5
    local src="$D/$name/$split.json"
    [ "$name" = msra_ner ] && [ "$split" = train ] && src="$D/$name/dev.json"  # MSRA has no train split here
    kgc convert -q -t "$task" --language "$lang" -i "$src" -s "$D/$name/schema.json" --split train \
        --limit "$limit" --source "$name" -o "$OUT/parts/$name-$split.json" "$@"
}
for split in train dev; do
    n() { [ "$split" = train ] && echo "$1" || echo "$2"; }
    c conll2003  NER en $split "$(n 2000 40)"
    c conll04    RE  en $split "$(n 400 20)"
    c webnlg     RE  en $split "$(n 300 10)" --neg-schema 0.02 --split-num 8
    c phee       EE  en $split "$(n 300 10)"
    c resume_ner NER zh $split "$(n 500 20)"
    [ "$split" = train ] && c msra_ner NER zh train 500
done
cat "$OUT"/parts/*-train.json > "$OUT/train.json"
cat "$OUT"/parts/*-dev.json > "$OUT/dev.json"
wc -l "$OUT/train.json" "$OUT/dev.json"
