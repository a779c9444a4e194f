#!/bin/bash
# Submit a whole batch to Slurm: the array job, then the step that waits for it.
#
#   deploy/slurm/submit.sh predict DATA OUT [TASKS [predict options ...]]   (default 10 tasks)
#   deploy/slurm/submit.sh grade SUBMISSIONS GRADES [TASKS [grade options ...]]
#
# Options after TASKS go to every `tumorseg predict` (array and finishing pass) or to every
# `tumorseg grade` task, e.g. `submit.sh predict DATA OUT 4 --weights my.weights.h5`.
#
# predict: TASKS shards write OUT/<case>.nii.gz; once every task has ended, successful or not
#   (afterany: a task that met a broken case exits 1, one that ran out of time is killed), one
#   unsharded pass writes whatever is missing and prints the totals, then merges the tasks'
#   check-first lists into one OUT/qc.csv, most doubtful case first; it exits 1 while some case
#   is broken (OUT/failures.csv names them).
# grade: TASKS shards write GRADES/shard-i; once all succeeded (afterok), merge.sbatch merges
#   them into GRADES.  A failed task leaves the merge pending for good (scancel it, regrade the
#   shard, then sbatch merge.sbatch yourself).
# Prints the job ids; watch them with `squeue --me` and `sacct -j ID` (where accounting is
# on; elsewhere `scontrol show job ID` until the controller forgets the job).  Logs go to the
# folder submit.sh runs in: tumorseg-predict-ARRAY_i.log for task i, tumorseg-predict-JOB.log
# for the finishing pass, tumorseg-grade-ARRAY_i.log and tumorseg-merge-JOB.log.
# tests/test_slurm.py runs this script on a real one-node Slurm.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $# -lt 3 ]]; then
    echo "usage: $0 predict|grade SOURCE OUT [TASKS]" >&2
    exit 2
fi
WHAT=$1 SOURCE=$2 OUT=$3 TASKS=${4:-10}
shift $(($# < 4 ? $# : 4))
submit() { # sbatch --parsable prints "id" or "id;cluster"
    local id
    id=$(sbatch --parsable "$@")
    echo "${id%%;*}"
}
case $WHAT in
predict)
    array=$(submit --array="0-$((TASKS - 1))" "$HERE/predict.sbatch" "$SOURCE" "$OUT" "$@")
    # not an array job: %a would name its log tumorseg-predict-JOB_4294967294.log
    finish=$(submit --dependency="afterany:$array" --output=tumorseg-predict-%j.log \
        "$HERE/predict.sbatch" "$SOURCE" "$OUT" "$@")
    echo "predict: array job $array ($TASKS tasks), finishing pass $finish"
    ;;
grade)
    array=$(submit --array="0-$((TASKS - 1))" "$HERE/grade.sbatch" "$SOURCE" "$OUT" "$@")
    merge=$(submit --dependency="afterok:$array" "$HERE/merge.sbatch" "$OUT" "$OUT")
    echo "grade: array job $array ($TASKS tasks), merge $merge"
    ;;
*)
    echo "$0: unknown batch $WHAT (predict or grade)" >&2
    exit 2
    ;;
esac
