#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read what a stranger sends (docs/fuzzing.md).
# Usage: scripts/fuzz.sh [TARGET...] [--minutes N] [--jobs J] [--keep-corpus]
#   TARGET         one or more of: safetensors config tokenizer pixels ffprobe hub chat (default: all)
#   --minutes N    how long each target runs under afl-fuzz (default 5)
#   --jobs J       how many targets this script runs at once (default 1)
#   --max-running M  on a shared machine: a target starts only when fewer than M afl-fuzz processes run on it
#   --keep-corpus  copies the newest inputs afl-fuzz found that reach new code (small ones, 20 per target) into fuzz/corpus/TARGET/
# Installs what is missing (afl++ from apt, the sharpfuzz dotnet tool into .cache/fuzz/tools), publishes
# fuzz/SlowFast.Fuzz into .cache/fuzz/bin, instruments the SlowFast assemblies there with sharpfuzz, runs
# afl-fuzz niced (it only takes idle CPU), and prints per target: executions, coverage and findings. Each
# finding is replayed uninstrumented to show its exception; it is kept under .cache/fuzz/out/TARGET/.
set -euo pipefail

# All of it is one function, read whole before it runs: editing this file cannot disturb a run in progress.
main() {
  cd "$(dirname "$0")/.."

  all_targets=(safetensors config tokenizer pixels ffprobe hub chat)
  targets=()
  minutes=5
  jobs=1
  max_running=0
  keep_corpus=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --minutes) minutes="$2"; shift 2 ;;
      --jobs) jobs="$2"; shift 2 ;;
      --max-running) max_running="$2"; shift 2 ;;
      --keep-corpus) keep_corpus=1; shift ;;
      -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
      -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
      *) targets+=("$1"); shift ;;
    esac
  done
  [ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
  for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (${all_targets[*]})" >&2; exit 2; }
  done

  work=.cache/fuzz
  mkdir -p "$work"

  # --- what it needs -------------------------------------------------------------------------------
  if ! command -v afl-fuzz >/dev/null; then
    echo "installing afl++ (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++ >/dev/null
  fi
  if [ ! -x "$work/tools/sharpfuzz" ]; then
    echo "installing the sharpfuzz tool (SharpFuzz.CommandLine 2.3.0)" >&2
    dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$work/tools" >/dev/null
  fi
  [ -s .cache/qwen-tokenizer/tokenizer.json ] || scripts/install-deps.sh

  # --- build and instrument ------------------------------------------------------------------------
  # A fresh publish for each run of this script (runs may overlap): sharpfuzz rewrites the assemblies in
  # place and must not see them twice.
  bin="$work/bin-$$"
  trap 'rm -rf "$bin"' EXIT
  rm -rf "$bin"
  nice -n 19 dotnet build fuzz/SlowFast.Fuzz -c Release -nologo -v q -clp:ErrorsOnly >/dev/null   # uninstrumented: replays the findings
  plain=fuzz/SlowFast.Fuzz/bin/Release/net10.0/SlowFast.Fuzz.dll
  nice -n 19 dotnet publish fuzz/SlowFast.Fuzz -c Release -o "$bin" -nologo -v q -clp:ErrorsOnly >/dev/null
  for dll in "$bin"/SlowFast.*.dll; do
    case "$(basename "$dll")" in SlowFast.Fuzz.dll) continue ;; esac
    "$work/tools/sharpfuzz" "$dll" >/dev/null
  done

  # --- fuzz ----------------------------------------------------------------------------------------
  export AFL_SKIP_BIN_CHECK=1            # the binary is dotnet; the coverage comes from the instrumented assemblies
  export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
  export AFL_IGNORE_PROBLEMS=1
  export DOTNET_gcServer=0 DOTNET_GCHeapHardLimit=0x40000000   # 1 GiB of managed heap: more is a finding (OutOfMemoryException)
  export DOTNET_TieredPGO=0

  # One target: afl-fuzz for the given minutes, then its numbers on one line in $work/TARGET.summary.
  fuzz_one() {
    local t="$1" out="$work/out/$1" dict=()
    rm -rf "$out"; mkdir -p "$work/out"
    [ -f "fuzz/dict/$t.dict" ] && dict=(-x "fuzz/dict/$t.dict")
    local cmd=(afl-fuzz -i "fuzz/corpus/$t" -o "$out" "${dict[@]}" -t 10000 -m none -V $((minutes * 60)) -- dotnet "$bin/SlowFast.Fuzz.dll" "$t")
    echo "== $t: nice -n 19 ${cmd[*]}" >&2
    if ! nice -n 19 "${cmd[@]}" > "$work/$t.log" 2>&1; then
      echo "$t: afl-fuzz failed; see $work/$t.log" | tee "$work/$t.summary" >&2
      tail -5 "$work/$t.log" >&2
      return 1
    fi
    local stats="$out/default/fuzzer_stats"
    stat() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats"; }
    local crashes hangs
    crashes=$(find "$out/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
    hangs=$(find "$out/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
    echo "$t: $(stat execs_done) executions in $(stat run_time) s ($(stat execs_per_sec)/s), coverage $(stat bitmap_cvg) of the map, $(stat edges_found) edges, corpus $(stat corpus_count), findings: $crashes crashes, $hangs hangs" > "$work/$t.summary"
    cat "$work/$t.summary" >&2
    for f in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
      [ -f "$f" ] || continue
      echo "   $f" >&2
      dotnet "$plain" replay "$t" "$f" | grep -E '^FINDING|^at ' | head -2 | sed 's/^/     /' >&2 || true
    done
    if [ "$keep_corpus" = 1 ]; then
      # The newest 20 that reached new code (the deepest), named afl-NNNNNN after their queue id.
      find "$out/default/queue" -maxdepth 1 -type f -name '*+cov*' -size -4k | sort | tail -20 | while read -r f; do
        cp "$f" "fuzz/corpus/$t/afl-$(basename "$f" | sed 's/^id:\([0-9]*\).*/\1/')"
      done
    fi
  }

  status=0
  for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || status=1; done
    if [ "$max_running" -gt 0 ]; then
      while [ "$(pgrep -xc afl-fuzz || true)" -ge "$max_running" ]; do sleep 15; done
    fi
    fuzz_one "$t" &
    sleep 5   # lets afl-fuzz start before the next count
  done
  while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done
  echo "== summary" >&2
  for t in "${targets[@]}"; do cat "$work/$t.summary"; done
  exit $status
}

main "$@"
