#!/bin/bash
# A no-change `make apply`, before and after a change, side by side on one applied stack.
#
# Usage: bench/apply_noop_ab.sh CHECKOUT BASE ROUNDS FILE...
#   CHECKOUT  a scratch copy of this repository in which `make apply` already ran (for
#             example tests/helpers/checkout.py's make_checkout, with the Ollama test
#             double's extra vars in CHECKOUT/.e2e/ollama-test-double.yml)
#   BASE      the commit whose versions of FILE... are "before" (a FILE it lacks is removed);
#             "after" is this working tree
#   ROUNDS    pairs to run; each pair runs before and after, one right after the other
# Prints one line per run: seconds, the load average, the PLAY RECAP's changed counts. Every
# run must say changed=0 everywhere, or it is no no-op. The machine's load moves the absolute
# seconds; compare the runs of a pair. Leaves CHECKOUT with this tree's FILE... in place.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
checkout=$1 base=$2 rounds=$3
shift 3
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
# A file that BASE lacks (new in this tree) is absent from the checkout for "before".
for f in "$@"; do
    mkdir -p "$store/before/$(dirname "$f")" "$store/after/$(dirname "$f")"
    git -C "$here" show "$base:$f" >"$store/before/$f" 2>/dev/null || rm -f "$store/before/$f"
    cp "$here/$f" "$store/after/$f"
done
place() {  # place SIDE: the checkout gets SIDE's version of every FILE
    for f in "${files[@]}"; do
        if [ -f "$store/$1/$f" ]; then cp "$store/$1/$f" "$checkout/$f"; else rm -f "$checkout/$f"; fi
    done
}
files=("$@")
extra=()
[ -f "$checkout/.e2e/ollama-test-double.yml" ] && extra=(ARGS="-e @.e2e/ollama-test-double.yml")
for round in $(seq "$rounds"); do
    for side in before after; do
        place "$side"
        log="$store/$side-$round.log"
        start=$(date +%s.%N)
        (cd "$checkout" && make --no-print-directory -o .venv/bin/aistack apply "${extra[@]}") >"$log" 2>&1
        end=$(date +%s.%N)
        printf '%s round %s: %.1f s, load %s, %s\n' "$side" "$round" "$(echo "$end - $start" | bc)" \
            "$(cut -d' ' -f1 /proc/loadavg)" "$(grep -o 'changed=[0-9]*' "$log" | sort | uniq -c | xargs)"
    done
done
place after
