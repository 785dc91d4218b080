# Phase timing for scripts/test.sh and scripts/ci.sh (sourced, not run). Set
# phases_prefix to the script's name, call begin_phase NAME before a phase and end_phase
# after it; when the script exits, passed or not, the times of the phases are printed
# (the one that was running when it stopped marked FAILED).
phases_prefix=${phases_prefix:-$(basename "$0")}
timings=()
phase_name=""
phase_start=0
begin_phase() {
    phase_name=$1
    phase_start=$SECONDS
    echo "$phases_prefix: == $phase_name" >&2
}
end_phase() {
    timings+=("$(printf '%-22s %5d s' "$phase_name" $((SECONDS - phase_start)))")
    phase_name=""
}
print_timings() {
    [ -n "$phase_name" ] && timings+=("$(printf '%-22s %5d s  FAILED' "$phase_name" $((SECONDS - phase_start)))")
    local t
    for t in "${timings[@]}"; do printf '%s:   %s\n' "$phases_prefix" "$t" >&2; done
    return 0
}
trap print_timings EXIT
