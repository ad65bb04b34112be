#!/usr/bin/env bash
# Run every stage of dvc.yaml in order, one `dvc repro -s` each, and record wall time and peak memory
# (maximum resident set size of the stage's process tree leader) per stage.
#   bash scripts/time_stages.sh [out.tsv]
set -euo pipefail
out=${1:-stage_times.tsv}
echo -e "stage\tseconds\tpeak_rss_mb" > "$out"
for stage in $(python -c "import yaml; print(' '.join(yaml.safe_load(open('dvc.yaml'))['stages']))"); do
  /usr/bin/time -o /tmp/stage_time -f "%e %M" dvc repro -s "$stage"
  read -r secs kb < /tmp/stage_time
  echo -e "$stage\t$secs\t$((kb / 1024))" >> "$out"
done
cat "$out"
