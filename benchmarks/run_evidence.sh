#!/usr/bin/env bash
# Issue 22's evidence, every stage in order, two processes with one thread each on 2 cores.
# Every stage resumes: rerun the same command after an interruption (a session's end) and finished runs
# are skipped, a pre-training or fine-tuning resumes from its last epoch. A stage's outputs feed the next.
#
#   bash benchmarks/run_evidence.sh            # every stage in turn (finished work is skipped)
#   bash benchmarks/run_evidence.sh 4          # from stage 4 on
#   bash benchmarks/run_evidence.sh status     # where every grid stands (runs nothing)
#
#   1  MS-CMRSeg: the 15 pre-trainings (PCL, SuperCL, MACL x 5 seeds, each seed its own)
#   2  MACL pre-trainings of seeds 0-2 on CHAOS and MSD Hippocampus (the folders of their evidence grids)
#   3  the choice of the fine-tuning of pre-trained encoders on VALIDATION, on the three sets
#      (benchmarks/finetune_transfer.py, MACL, seeds 0-2, arms standard, lr0.1, lpft, lpft_lr0.1;
#      Scratch is the grids' own cells: OUT/transfer/choice.json)
#   4  MS-CMRSeg fine-tuning in one pass: the standard recipe at 500 steps (the grid's cells) and 150
#      steps (variant steps150), the papers' recipe at 750 steps (paper750), and the chosen fine-tuning
#      at 500 and 150 steps (variants transfer500, transfer150; none when validation chose standard)
#   5  CHAOS: its other 12 pre-trainings, the budget picked on MS-CMRSeg's validation
#      (benchmarks/evidence_choice.py budget: OUT/evidence_budget.json), fine-tuning at that budget with
#      the chosen fine-tuning as a variant
#   6  the reports of every grid and variant, the bundles under benchmarks/results/cpu/ (evidence_mscmrseg,
#      evidence_chaos, evidence_transfer), and the summary of every comparison with Scratch, Holm-corrected
#      over all of them (benchmarks/evidence_summary.py -> benchmarks/results/cpu/evidence_summary)
# Compute: `medssl benchmark ... --status` says what is done and what is left; each benchmark process
# prints the core-hours of the grid's runs (wall time x torch threads) at its end.
# Stages 4 and 5 run in units (benchmarks/evidence_units.py: one method and seed, its pre-training and every
# fine-tuning that needs it), so that a machine lost at a session's end loses no finished cell:
#   UNTIL=09:40 bash benchmarks/run_evidence.sh 4     # start no unit that would end after 09:40
#   UNTIL=2026-12-08T00:30 bash benchmarks/run_evidence.sh 5   # or a date and time; HH:MM is its next coming
#   bash benchmarks/run_evidence.sh restore           # a new machine: the committed bundles' finished runs
#                                                     # back into runs/ (then the stages skip them)
#   bash benchmarks/run_evidence.sh export            # a session's end: the grids' bundles made again (commit them)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs}
FROM=${1:-1}
export OMP_NUM_THREADS=1

two() {  # the same command as two processes, --cells 0/2 and 1/2; fails if either fails
    local pids=()
    for i in 0 1; do
        "$@" --cells "$i/2" >"$OUT/logs/$(basename "${LOGNAME_PREFIX:-run}")_$i.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
}
mkdir -p "$OUT/logs"
MS=(medssl benchmark --config configs/evidence_mscmrseg.yaml --out "$OUT/evidence_mscmrseg")
CH=(medssl benchmark --config configs/evidence_chaos.yaml --out "$OUT/evidence_chaos")
HI=(medssl benchmark --config configs/evidence_hippocampus.yaml --out "$OUT/evidence_hippocampus"
    --set "methods=[scratch, macl]" --set "seeds=[0, 1, 2]")

if [ "$FROM" = restore ]; then
    mkdir -p "$OUT/transfer"
    cp benchmarks/results/cpu/evidence_transfer/choice.json "$OUT/transfer/choice.json"
    for g in mscmrseg chaos; do
        b=benchmarks/results/cpu/evidence_$g
        [ -d "$b" ] && python benchmarks/evidence_units.py restore --grid "$g" --out "$OUT" --bundle "$b"
    done
    exit 0
fi
if [ "$FROM" = export ]; then
    for g in mscmrseg chaos; do
        [ -d "$OUT/evidence_$g" ] || continue
        python benchmarks/evidence_units.py export --grid "$g" --out "$OUT" --bundle "benchmarks/results/cpu/evidence_$g"
    done
    exit 0
fi
sets_args() {  # the --set arguments of the chosen fine-tuning (stage 3) for "ms" or "ch"
    local lines=() a=()
    if [ ! -f "$OUT/transfer/choice.json" ]; then echo "no $OUT/transfer/choice.json: run stage 3 first" >&2; exit 1; fi
    if [ "$1" = ms ]; then
        mapfile -t lines < <(python benchmarks/evidence_choice.py sets --choice "$OUT/transfer/choice.json" --steps 500 150)
    else
        mapfile -t lines < <(python benchmarks/evidence_choice.py sets --choice "$OUT/transfer/choice.json" \
            --budget-file "$OUT/evidence_budget.json")
    fi
    for l in "${lines[@]}"; do [ -n "$l" ] && a+=(--set "$l"); done
    [ "${#a[@]}" -eq 0 ] || printf '%s\n' "${a[@]}"
}
if [ "$FROM" = status ]; then  # with the variants of the chosen fine-tuning once stage 3 (and 5's budget) made them
    for g in "MS" "HI" "CH"; do
        declare -n cmd="$g"
        a=()
        [ "$g" = MS ] && [ -f "$OUT/transfer/choice.json" ] && mapfile -t a < <(sets_args ms)
        [ "$g" = CH ] && [ -f "$OUT/evidence_budget.json" ] && mapfile -t a < <(sets_args ch)
        echo "== ${cmd[3]}"
        "${cmd[@]}" "${a[@]}" --status
    done
    n=$(find "$OUT/transfer" -name summary.json 2>/dev/null | wc -l)
    nb=$(find benchmarks/results/cpu/evidence_transfer -name summary.json 2>/dev/null | wc -l)
    echo "== transfer choice: $n of 36 runs finished in $OUT/transfer, $nb in its bundle benchmarks/results/cpu/evidence_transfer"
    exit 0
fi
if [ "$FROM" -le 1 ]; then echo "stage 1: MS-CMRSeg pre-trainings"; LOGNAME_PREFIX=s1 two "${MS[@]}" --pretrain-only; fi
if [ "$FROM" -le 2 ]; then
    echo "stage 2: MACL pre-trainings (seeds 0-2) on CHAOS and Hippocampus"
    LOGNAME_PREFIX=s2h two "${HI[@]}" --pretrain-only
    LOGNAME_PREFIX=s2c two "${CH[@]}" --set "methods=[scratch, macl]" --set "seeds=[0, 1, 2]" --pretrain-only
fi
if [ "$FROM" -le 3 ]; then
    echo "stage 3: the choice of fine-tuning for pre-trained encoders, on validation"
    python benchmarks/finetune_transfer.py --out "$OUT/transfer" --method macl --seeds 0 1 2 --jobs 2 \
        --arms standard lr0.1 lpft lpft_lr0.1 \
        --store mscmrseg="$OUT/evidence_mscmrseg/prepared/mscmrseg" \
        --store chaos="$OUT/evidence_chaos/prepared/chaos" \
        --store hippocampus="$OUT/evidence_hippocampus/prepared/hippocampus" \
        --init mscmrseg="$OUT/evidence_mscmrseg/pretrain/macl__mscmrseg__s{seed}" \
        --init chaos="$OUT/evidence_chaos/pretrain/macl__chaos__s{seed}" \
        --init hippocampus="$OUT/evidence_hippocampus/pretrain/macl__hippocampus__s{seed}" \
        >"$OUT/logs/s3_transfer.log" 2>&1
fi
if [ "$FROM" -le 4 ]; then
    echo "stage 4: MS-CMRSeg fine-tuning (standard 500 / 150, paper 750, the chosen fine-tuning 500 / 150)"
    sets_args ms >/dev/null  # stops here without stage 3's choice
    rc=0; python benchmarks/evidence_units.py run --grid mscmrseg --out "$OUT" --until "${UNTIL:-23:59}" || rc=$?
    [ "$rc" -eq 3 ] && { echo "stage 4: units left for another sitting (export the bundle; restore and rerun)"; exit 0; }
    [ "$rc" -eq 0 ] || exit "$rc"
fi
if [ "$FROM" -le 5 ]; then
    echo "stage 5: CHAOS (the other pre-trainings; fine-tuning at the budget MS-CMRSeg's validation picked)"
    python benchmarks/evidence_choice.py budget "$OUT/evidence_mscmrseg" >"$OUT/evidence_budget.json"
    rc=0; python benchmarks/evidence_units.py run --grid chaos --out "$OUT" --until "${UNTIL:-23:59}" || rc=$?
    [ "$rc" -eq 3 ] && { echo "stage 5: units left for another sitting (export the bundle; restore and rerun)"; exit 0; }
    [ "$rc" -eq 0 ] || exit "$rc"
fi
if [ "$FROM" -le 6 ]; then
    echo "stage 6: reports (every cell is done: the benchmark only writes them) and bundles"
    mapfile -t ARGS < <(sets_args ms)
    "${MS[@]}" "${ARGS[@]}" | tail -n 20
    mapfile -t ARGS < <(sets_args ch)
    "${CH[@]}" "${ARGS[@]}" | tail -n 20
    R=benchmarks/results/cpu
    for g in mscmrseg chaos; do
        python benchmarks/evidence_units.py export --grid "$g" --out "$OUT" --bundle "$R/evidence_$g"
    done
    # stage 3's runs as a bundle, and its table, choice and curves recomputed from the bundle alone
    TR=(python benchmarks/finetune_transfer.py --seeds 0 1 2 --arms standard lr0.1 lpft lpft_lr0.1 --report-only)
    if [ -e "$R/evidence_transfer" ]; then echo "$R/evidence_transfer exists: remove it to export again"
    else "${TR[@]}" --out "$OUT/transfer" --bundle "$R/evidence_transfer" >/dev/null; fi
    "${TR[@]}" --out "$R/evidence_transfer" | tail -n 3
    # every pre-trained method against Scratch, every grid and variant, Holm over all of them
    python benchmarks/evidence_summary.py --out "$R/evidence_summary" "$R/evidence_mscmrseg" "$R/evidence_chaos"
    # whether the chosen fine-tuning becomes the default for --init (DEFAULT_RULE: validation only)
    N=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['max_steps'])" "$OUT/evidence_budget.json")
    pairs=(--pair "mscmrseg:$R/evidence_mscmrseg/finetune:$R/evidence_mscmrseg/variants/transfer500/finetune"
           --pair "mscmrseg:$R/evidence_mscmrseg/variants/steps150/finetune:$R/evidence_mscmrseg/variants/transfer150/finetune"
           --pair "chaos:$R/evidence_chaos/finetune:$R/evidence_chaos/variants/transfer$N/finetune")
    python benchmarks/evidence_choice.py default --choice "$R/evidence_transfer/choice.json" "${pairs[@]}" \
        >"$R/evidence_summary/default.json"
    cat "$R/evidence_summary/default.json"
fi
