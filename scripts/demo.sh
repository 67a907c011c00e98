#!/usr/bin/env bash
# The main job: installs what is missing, builds `slowfast`, and asks a question about a real video.
#   scripts/demo.sh [VIDEO] [QUESTION]
# Without VIDEO, ffmpeg makes a short test clip. The model is $SLOWFAST_MODEL if set (a directory
# or a hub id such as shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4); otherwise a
# tiny random-weight checkpoint is created, so the answer is well-formed but meaningless.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dotnet build src/SlowFast.Cli -c Release -nologo -v q -clp:ErrorsOnly
slowfast() { dotnet src/SlowFast.Cli/bin/Release/net10.0/slowfast.dll "$@"; }

video=${1:-}
question=${2:-"Please describe this video in detail."}
if [ -z "$video" ]; then
  video=.cache/demo/clip.mp4
  if [ ! -s "$video" ]; then
    mkdir -p .cache/demo
    ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=25" -f lavfi -i "sine=frequency=440" \
      -t 6 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest "$video"
  fi
fi

model=${SLOWFAST_MODEL:-}
if [ -z "$model" ]; then
  model=.cache/models/tiny
  [ -f "$model/config.json" ] || slowfast create-model --preset tiny --out "$model"
  slowfast inspect --model "$model" --frames 16
fi
slowfast ask --model "$model" --video "$video" --frames 16 --max-new-tokens 48 "$question"
echo
