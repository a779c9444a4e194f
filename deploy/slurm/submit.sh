#!/bin/bash
# Submit a whole batch to Slurm: the array job, then the step that waits for it.
#
#   deploy/slurm/submit.sh predict DATA OUT [TASKS]          (default 10 tasks)
#   deploy/slurm/submit.sh grade SUBMISSIONS GRADES [TASKS]
#
# predict: TASKS shards write OUT/<case>.nii.gz; once every task has ended, successful or not
#   (afterany: a task that met a broken case exits 1, one that ran out of time is killed), one
#   unsharded pass writes whatever is missing and prints the totals; it exits 1 while some case
#   is broken (OUT/failures.csv names them).
# grade: TASKS shards write GRADES/shard-i; once all succeeded (afterok), merge.sbatch merges
#   them into GRADES.  A failed task leaves the merge pending for good (scancel it, regrade the
#   shard, then sbatch merge.sbatch yourself).
# Prints the job ids; watch them with `squeue --me` and `sacct -j ID`.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $# -lt 3 ]]; then
    echo "usage: $0 predict|grade SOURCE OUT [TASKS]" >&2
    exit 2
fi
WHAT=$1 SOURCE=$2 OUT=$3 TASKS=${4:-10}
submit() { # sbatch --parsable prints "id" or "id;cluster"
    local id
    id=$(sbatch --parsable "$@")
    echo "${id%%;*}"
}
case $WHAT in
predict)
    array=$(submit --array="0-$((TASKS - 1))" "$HERE/predict.sbatch" "$SOURCE" "$OUT")
    finish=$(submit --dependency="afterany:$array" "$HERE/predict.sbatch" "$SOURCE" "$OUT")
    echo "predict: array job $array ($TASKS tasks), finishing pass $finish"
    ;;
grade)
    array=$(submit --array="0-$((TASKS - 1))" "$HERE/grade.sbatch" "$SOURCE" "$OUT")
    merge=$(submit --dependency="afterok:$array" "$HERE/merge.sbatch" "$OUT" "$OUT")
    echo "grade: array job $array ($TASKS tasks), merge $merge"
    ;;
*)
    echo "$0: unknown batch $WHAT (predict or grade)" >&2
    exit 2
    ;;
esac
