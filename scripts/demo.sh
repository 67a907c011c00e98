#!/usr/bin/env bash
# The main job: installs what is missing, builds the `slowfast` program, creates a tiny random-weight
# checkpoint and shows what it is. (Until the model can answer questions, this is the main job.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dotnet build src/SlowFast.Cli -c Release -nologo -v q -clp:ErrorsOnly
slowfast() { dotnet src/SlowFast.Cli/bin/Release/net10.0/slowfast.dll "$@"; }
model=.cache/models/tiny
[ -f "$model/config.json" ] || slowfast create-model --preset tiny --out "$model"
slowfast inspect --model "$model" --frames 64
echo '{"text": "Please describe this video in detail."}' | slowfast tokenize --model "$model"
