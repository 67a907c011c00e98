#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test of SlowFast.NET.
# Usage: scripts/test.sh [extra dotnet test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet build SlowFast.sln -c Release -nologo -v q -clp:ErrorsOnly || exit 1
dotnet test SlowFast.sln -c Release --no-build -nologo --blame-hang-timeout 10m --blame-hang-dump-type none "$@" 2>&1 | tee "$log" || status=$?

# The fuzz targets' smoke run (docs/fuzzing.md): each target's committed corpus, its kept findings and 1000
# mutations of its seeds, uninstrumented (no AFL++ needed); a finding fails the run.
dotnet fuzz/SlowFast.Fuzz/bin/Release/net10.0/SlowFast.Fuzz.dll smoke --root fuzz --mutations 1000 || status=1

# One closing line for the whole run, summed over the test assemblies.
passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -Eo 'Skipped: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
