#!/usr/bin/env bash
# Training data of kgc's default IE adapter for SmolLM2-135M-Instruct, from ../shared/datasets.
# English and Chinese; NER, RE, EE, EET and EEA on every training record; schema chunks (split_num) and
# negative schemas as IEPile recommends, with fewer pure-negative chunks for WebNLG's 216-relation schema.
set -euo pipefail
D=${KGC_SHARED:-$(cd "$(dirname "$0")/../../../.." && pwd)/shared}/datasets
OUT=${1:-runs/smollm2-ie/data}
mkdir -p "$OUT/parts"
c() { # dataset task language split [convert options...]
    local name=$1 task=$2 lang=$3 split=$4; shift 4
    local src="$D/$name/$split.json" limit=()
    [ "$name" = msra_ner ] && [ "$split" = train ] && src="$D/$name/dev.json"  # MSRA has no train split here
    [ "$split" = dev ] && limit=(--limit 10)                                  # a small dev set for eval loss
    kgc convert -q -t "$task" --language "$lang" -i "$src" -s "$D/$name/schema.json" --split train \
        --source "$name" -o "$OUT/parts/$name-$task-$split.json" "${limit[@]}" "$@"
}
for split in train dev; do
    c conll2003  NER en $split
    c conll04    RE  en $split
    c webnlg     RE  en $split --neg-schema 0.1 --split-num 8
    c phee       EE  en $split
    c phee       EET en $split
    c phee       EEA en $split
    c resume_ner NER zh $split
    [ "$split" = train ] && c msra_ner NER zh train
done
cat "$OUT"/parts/*-train.json > "$OUT/train.json"
cat "$OUT"/parts/*-dev.json > "$OUT/dev.json"
wc -l "$OUT/train.json" "$OUT/dev.json"
