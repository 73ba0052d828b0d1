#!/usr/bin/env bash
# Writes the seed corpus: each mapped statement once per backend byte (0 PostgreSQL,
# 1 MySQL, 2 SQLite, 0x80|b the schema placement).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/rewrite
i=0
while IFS= read -r line; do
  [ -z "$line" ] && continue
  for b in 00 01 02 80 81; do
    printf "\\x$b%s" "$line" > "corpus/rewrite/seed-$i-$b"
  done
  i=$((i + 1))
done < corpus_src/identity_mapped.sql
echo "$i statements, $(ls corpus/rewrite | wc -l) seeds"
