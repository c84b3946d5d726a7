#!/usr/bin/env bash
# One prepared run on a machine lent with a GPU: the device's time is short and counted, so
# everything is built here and carried, and the run does the sections named in SECTIONS,
# in that order (put first what is worth most if the run is cut short). After a smoke test:
#   ab       with OLD=path at --prepare, that earlier build of the CLI travels too and is
#            timed against this one on both backends, same device, same run, rounds
#            alternated: a change's speed-up as a ratio, never against another day's number
#            (AB_METHODS picks the methods)
#   tests    the GPU test binaries: GPU = CPU on real hardware, not only lavapipe
#   bench    scripts/bench_gpu.py's table (BENCH_ARGS picks the rows; empty for all)
#   quality  the learned denoiser's PSNR on the W2S pairs at a GPU's training budget
#   timings  its end-to-end timings (issue 20's "train on a 256² region and apply to 512²
#            in ≤ 2 s"), measured on the first H200 lease, so last by default
#
# Prepare the kit here (the paths are git-ignored through .git/info/exclude):
#   [OLD=path/to/earlier/denoisekit] scripts/device_bench.sh --prepare
# then run, carrying .gl and .devkit:
#   bash scripts/device_bench.sh        (results under $OUT)
#
# On 2026-12-04 (an H200, 15 minutes of device time in all) the three leases took 2 to 5
# minutes each with these defaults; the full bench_gpu.py table with its 3D scene did not
# fit in one.
set -u
BENCH_ARGS=${BENCH_ARGS---only bm3d,tikhonov,fourier_filter,nl_means,gaussian --no-3d}
SECTIONS=${SECTIONS-ab tests bench quality timings}
# The paper's budget costs about 80 times the defaults' per pair: a few pairs show the trend.
QUALITY_PAIRS=${QUALITY_PAIRS-4}
KIT=.devkit
if [ "${1:-}" = "--prepare" ]; then
    set -e
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gl/' "$exclude" 2>/dev/null || printf '/.gl/\n' >> "$exclude"
    grep -qx '/.devkit/' "$exclude" || printf '/.devkit/\n' >> "$exclude"
    # The Vulkan loader: the device image has the NVIDIA driver but not always the loader.
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update -qq
    (cd .gl && apt-get $o download libvulkan1)
    cargo build --release -p denoisekit-cli
    rm -rf $KIT && mkdir -p $KIT/tests $KIT/bench $KIT/w2s
    cp target/release/denoisekit $KIT/ && strip $KIT/denoisekit
    if [ -n "${OLD:-}" ]; then cp "$OLD" $KIT/denoisekit-old && strip $KIT/denoisekit-old; fi
    # Two of the GPU test binaries: with the pairs, all four pass the 64 MiB a call carries
    # (gpu_faults and gpu_reuse passed on an H200 on 2026-12-04).
    for t in gpu_matches_cpu gpu_auto; do
        exe=$(cargo test --release -p denoisekit-gpu --test $t --no-run --message-format=json 2>/dev/null |
            python3 -c 'import json,sys; print([j["executable"] for j in map(json.loads, sys.stdin) if j.get("executable")][-1])')
        cp "$exe" $KIT/tests/$t && strip $KIT/tests/$t
    done
    cp ../shared/bench/* $KIT/bench/
    cp ../shared/data/real-pairs/w2s/w2s_010_0/noisy.tif $KIT/w2s/
    # The W2S pairs, for the learned method's quality at a GPU's training budget.
    for d in ../shared/data/real-pairs/w2s/*/; do
        mkdir -p $KIT/pairs/$(basename $d)
        cp $d/noisy.tif $d/gt_matched_f32.tif $KIT/pairs/$(basename $d)/
    done
    du -sh $KIT
    exit 0
fi

OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f $icd ] && export VK_DRIVER_FILES=$icd
export WGPU_BACKEND=vulkan
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/smi.txt"
CLI=$KIT/denoisekit
img=$KIT/w2s/noisy.tif
TIMEFORMAT=%R

echo "== smoke"
$CLI bench $img --method gaussian --backend gpu --repeats 1 || exit 1

section() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }

section ab && {
echo "== A/B: the previous build against this one, same device, same scene"
if [ -x $KIT/denoisekit-old ]; then
    scene=/tmp/ab/inputs/synth_2048x2048_noisy_s0.1_seed0.tif
    methods=$(for m in ${AB_METHODS-gaussian median bilateral nl_means tikhonov fourier_filter}; do printf -- '--method %s ' $m; done)
    python3 $KIT/bench/peers.py run --shape 2048 2048 --only gaussian --skip crop --repeats 1 \
        --inputs-dir /tmp/ab/inputs --out /tmp/ab/peers > /dev/null 2>&1
    for round in 1 2; do
        for backend in gpu cpu; do
            for build in old new; do
                exe=$CLI; [ $build = old ] && exe=$KIT/denoisekit-old
                $exe bench $scene $methods --backend $backend --repeats 9 noise_model=gaussian 2>/dev/null |
                    grep '^| [a-z]' | grep -v '^| method' |
                    awk -F'|' -v b=$build -v r=$round -v d=$backend '{print b " | " d " | round " r " |" $2 "|" $5 "|" $6 "|"}'
            done
        done
    done
else
    echo "no earlier build carried (prepare with OLD=path)"
fi 2>&1 | tee "$OUT/ab.txt"

}
section tests && {
echo "== GPU tests on this device"
for t in gpu_matches_cpu gpu_auto; do
    DENOISEKIT_REQUIRE_GPU=1 timeout 150 $KIT/tests/$t > "$OUT/test_$t.log" 2>&1
    echo "$t: rc $? ($(grep -E '^test result' "$OUT/test_$t.log" | tail -1))"
    grep -E 'FAILED|panicked' "$OUT/test_$t.log" | head -20
done | tee "$OUT/tests.txt"

}
section bench && {
echo "== bench_gpu.py"
PYTHONUNBUFFERED=1 python3 scripts/bench_gpu.py --py python3 --peers $KIT/bench/peers.py --cli $CLI $BENCH_ARGS \
    --peer-repeats 1 --out /tmp/gpu-bench --md "$OUT/gpu.md" > "$OUT/bench_gpu.log" 2>&1
echo "bench_gpu.py: rc $?"
tail -40 "$OUT/gpu.md" 2>/dev/null || tail -30 "$OUT/bench_gpu.log"
}
section quality && {
echo "== learned: PSNR on the W2S pairs at the defaults and at the paper's budget, on the GPU"
# Mansour & Heckel train 2000 steps on the whole image; 2 cores cannot afford that
# (docs/benchmarks.md, "what the training budget buys"), a GPU may.
# Budgets are separated by ';', a budget's options by spaces (an unquoted word list split
# "steps=2000 patch=256" into two runs of one option each).
IFS=';' read -ra budgets <<< "${QUALITY_BUDGETS-steps=2000 patch=256;steps=2000 patch=256 layers=4}"
for budget in "${budgets[@]}"; do
    echo "-- $budget"
    DENOISEKIT_CLI=$CLI DENOISEKIT_PAIRS=$KIT/pairs PYTHONUNBUFFERED=1 \
        timeout 200 python3 scripts/bench_learned.py --backend gpu --zs-only --pairs "$QUALITY_PAIRS" --set $budget
done 2>&1 | grep -v INFO | tee "$OUT/learned_quality.txt"

}
section timings && {
echo "== learned: train on a 256x256 region of a 512x512 W2S image, apply to all of it"
region=train_region=128,128,256,256
{
    for round in 1 2; do
        for b in gpu cpu; do
            s=$( { time $CLI run --backend $b zs_n2n $img /tmp/zs_$b.tif $region >/dev/null 2>&1; } 2>&1 )
            echo "end to end, process start to file written | $b | round $round | ${s} s | rc $?"
        done
    done
    # Supervised training on synthetic scenes (the scenes are drawn on the CPU either way).
    for b in gpu cpu; do
        s=$( { time $CLI run --backend $b zs_n2n $img /tmp/zs_s.tif training=synthetic psf_sigma=6 noise_model=auto >/dev/null 2>&1; } 2>&1 )
        echo "synthetic training (psf_sigma=6), end to end | $b | ${s} s | rc $?"
    done
    # The deeper network (docs/benchmarks.md, "network depth": 3x the CPU's time).
    for b in gpu cpu; do
        s=$( { time $CLI run --backend $b zs_n2n $img /tmp/zs_l.tif $region layers=4 >/dev/null 2>&1; } 2>&1 )
        echo "layers=4, end to end | $b | ${s} s | rc $?"
    done
    $CLI run --backend cpu zs_n2n $img /tmp/zs_w.tif $region save_weights=/tmp/zs_w.json >/dev/null
    for b in gpu cpu; do
        $CLI bench $img --method zs_n2n --backend $b --repeats 3 $region | grep '^| zs_n2n' | sed "s/^/train+apply in process | /"
        $CLI bench $img --method zs_n2n --backend $b --repeats 5 weights=/tmp/zs_w.json | grep '^| zs_n2n' | sed "s/^/apply saved weights 512x512 | /"
        for s in 1 2; do
            t=$( { time $CLI run --backend $b zs_n2n $img /tmp/zs_a.tif weights=/tmp/zs_w.json >/dev/null 2>&1; } 2>&1 )
            echo "apply saved weights, end to end | $b | ${t} s | rc $?"
        done
    done
} 2>&1 | tee "$OUT/learned.txt"

}
