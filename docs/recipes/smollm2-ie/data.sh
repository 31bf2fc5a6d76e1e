#!/usr/bin/env bash
# Training data of kgc's default IE adapter for SmolLM2-135M-Instruct, from ../shared/datasets.
# English and Chinese; NER, RE, EE, EET and EEA on every training record; schema chunks (split_num) and
# negative schemas as IEPile recommends, with fewer pure-negative chunks for WebNLG's 216-relation schema.
# CAP=N keeps at most N instructions of each dataset and task (a seeded random sample): a balanced mixture
# that fits a training budget.
set -euo pipefail
D=${KGC_SHARED:-$(cd "$(dirname "$0")/../../../.." && pwd)/shared}/datasets
OUT=${1:-runs/smollm2-ie/data}
CAP=${CAP:-}
mkdir -p "$OUT/parts"
c() { # dataset task language split [convert options...]
    local name=$1 task=$2 lang=$3 split=$4; shift 4
    local src="$D/$name/$split.json" limit=()
    [ "$name" = msra_ner ] && [ "$split" = train ] && src="$D/$name/dev.json"  # MSRA has no train split here
    [ "$split" = dev ] && limit=(--limit 10)                                  # a small dev set for eval loss
    local part="$OUT/parts/$name-$task-$split.json"
    kgc convert -q -t "$task" --language "$lang" -i "$src" -s "$D/$name/schema.json" --split train \
        --source "$name" -o "$part" "${limit[@]}" "$@"
    if [ -n "$CAP" ] && [ "$split" = train ]; then
        python3 -c 'import random, sys
path, cap = sys.argv[1], int(sys.argv[2])
lines = open(path, encoding="utf-8").readlines()
random.Random(42).shuffle(lines)
open(path, "w", encoding="utf-8").writelines(lines[:cap])' "$part" "$CAP"
    fi
}
for split in train dev; do
    c conll2003  NER en $split
    c wnut17     NER en $split
    c conll04    RE  en $split
    c nyt        RE  en $split
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
