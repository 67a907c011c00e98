#!/bin/bash
# A starting point, not exercised by the tests: `slowfast eval` as a Slurm job array, one array task per shard.
#   sbatch deploy/slurm/eval-array.sh                   # 8 shards of VideoMME
#   TASK=mvbench DATA=/data/mvbench sbatch deploy/slurm/eval-array.sh
# then, once every array task has finished:
#   slowfast eval merge results/videomme/shard-{0..7} --out results/videomme/all
# A requeued or re-submitted array task continues its shard (--resume skips what its log already holds).
# Keep --array=0-(N-1) and SHARDS=N in step.
#SBATCH --job-name=slowfast-eval
#SBATCH --array=0-7
#SBATCH --cpus-per-task=16
#SBATCH --mem=40G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=slowfast-eval-%A_%a.log
set -euo pipefail

SHARDS=${SHARDS:-8}
TASK=${TASK:-videomme}
DATA=${DATA:-/data/videomme}
MODEL=${MODEL:-shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4}
FRAMES=${FRAMES:-64}
OUT=${OUT:-results/$TASK}
SLOWFAST=${SLOWFAST:-slowfast}

exec $SLOWFAST eval --model "$MODEL" --task "$TASK" --data "$DATA" --frames "$FRAMES" \
  --shard "$SLURM_ARRAY_TASK_ID/$SHARDS" --out "$OUT/shard-$SLURM_ARRAY_TASK_ID" --resume
