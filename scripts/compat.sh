#!/usr/bin/env bash
# The compatibility suite behind `make compat`: every node binary that a standard Maelstrom
# workload fits, with no faults and under partitions, through $MAELSTROM (our harness, or
# the real Maelstrom 0.2.4: only options it has, node arguments as trailing arguments).
# Prints one line per run and fails if any run is not valid. REPEAT=N repeats the suite.
set -uo pipefail

: "${MAELSTROM:?the harness to run: our workloads binary or the real maelstrom}"
: "${RELEASE:=target/release}"
: "${TIME:=5}"
: "${REPEAT:=1}"
EXAMPLES="$RELEASE/examples"
LOGS="${COMPAT_LOGS:-target/compat}"
mkdir -p "$LOGS"

# workload | node binary | options shared by both fault settings
RUNS=(
  "echo|$EXAMPLES/echo|--node-count 3 --rate 10"
  "unique-ids|$EXAMPLES/unique_ids|--node-count 3 --rate 100 --availability total"
  "unique-ids|$RELEASE/giftid-node|--node-count 3 --rate 100 --availability total"
  "broadcast|$EXAMPLES/broadcast|--node-count 5 --rate 20 --latency 20"
  "g-counter|$EXAMPLES/g_counter|--node-count 3 --rate 20"
  "lin-kv|$EXAMPLES/lin-kv|--node-count 5 --concurrency 2n --rate 100"
)
FAULTS=("none" "partition")

verdict() {
  case "$1" in
    0) echo valid ;;
    1) echo invalid ;;
    2) echo unknown ;;
    254) echo bad-args ;;
    *) echo "crashed($1)" ;;
  esac
}

total=0
failed=0
printf '%-3s %-11s %-12s %-10s %-10s %6s\n' round workload binary faults verdict wall
for round in $(seq 1 "$REPEAT"); do
  for run in "${RUNS[@]}"; do
    IFS='|' read -r workload bin opts <<< "$run"
    for fault in "${FAULTS[@]}"; do
      nemesis=""
      [ "$fault" = partition ] && nemesis="--nemesis partition --nemesis-interval 2"
      total=$((total + 1))
      log="$LOGS/$round-$workload-$(basename "$bin")-$fault.log"
      started=$(date +%s%N)
      # shellcheck disable=SC2086 # the options are words on purpose
      "$MAELSTROM" test -w "$workload" --bin "$bin" $opts $nemesis --time-limit "$TIME" \
        > "$log" 2>&1
      status=$?
      tenths=$((($(date +%s%N) - started) / 100000000))
      result=$(verdict "$status")
      printf '%-3s %-11s %-12s %-10s %-10s %4d.%ds\n' "$round" "$workload" \
        "$(basename "$bin")" "$fault" "$result" $((tenths / 10)) $((tenths % 10))
      if [ "$status" -ne 0 ]; then
        failed=$((failed + 1))
        echo "    log: $log"
        tail -n 5 "$log" | sed 's/^/    /'
      fi
    done
  done
done
echo "compat: $((total - failed)) of $total runs valid"
[ "$failed" -eq 0 ]
