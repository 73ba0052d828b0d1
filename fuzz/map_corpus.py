#!/usr/bin/env python3
"""Maps SQL that nobody here wrote onto the SmartSeller schema, for the rewriter's fuzz
corpus and the corpus test: every name in a table position (after FROM, JOIN, INTO,
UPDATE, TABLE) becomes one of the SmartSeller tables, in turn.

    python3 fuzz/map_corpus.py sqlglot-*/tests/fixtures/identity.sql > fuzz/corpus_src/identity_mapped.sql

The input is sqlglot's tests/fixtures/identity.sql (MIT licence, Copyright (c) Toby Mao;
see fuzz/corpus_src/LICENSE-sqlglot); each output line is one statement.
"""
import re
import sys

TABLES = ["customers", "orders", "order_items", "customer_addresses",
          "shopping_carts", "cart_items", "countries"]
KEYWORDS = {"select", "lateral", "unnest", "values", "table", "only", "(", "with"}
POSITION = re.compile(
    r"(?i)\b(FROM|JOIN|INTO|UPDATE|TABLE)(\s+)((?:[A-Za-z_][A-Za-z0-9_]*|\"[^\"]+\"|`[^`]+`)"
    r"(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\"[^\"]+\"|`[^`]+`))*)")


def main() -> None:
    n = 0
    for line in open(sys.argv[1], encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("--"):
            continue

        def repl(m: re.Match) -> str:
            nonlocal n
            name = m.group(3)
            if name.lower() in KEYWORDS:
                return m.group(0)
            n += 1
            return f"{m.group(1)}{m.group(2)}{TABLES[n % len(TABLES)]}"

        print(POSITION.sub(repl, line))


if __name__ == "__main__":
    main()
