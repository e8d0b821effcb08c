# lib.sh - what the benchmark scripts share (sourced; not a test).
#
#   bench_stop            kill the processes in "${pids[@]}" and wait (up
#                         to 10 s) for them to go: a run started at once
#                         found the ports of a gateway still draining taken
#   median                the median of the numbers on stdin (nothing for none)
#   ratio_stats           "x y" per line on stdin: the median, min and max of
#                         x/y over the lines (y > 0), as "median min max"
#   cpu_ticks "PID..."    CPU ticks (user + system, all threads) of the
#                         processes and of the first one's children
#   hap_head MAXCONN [LINE...]
#                         the global (with LINEs) and defaults sections of an
#                         HTTP HAProxy configuration, $workers threads

bench_stop() {
  local p i alive
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for i in $(seq 100); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
}

median() {
  sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

ratio_stats() {
  awk '$2 > 0 {print $1 / $2}' | sort -n |
    awk '{a[NR]=$1} END {if (NR == 0) exit
      printf "%.3f %.3f %.3f\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[1], a[NR]}'
}

hap_head() {
  local maxconn=$1 l
  shift
  printf 'global\n  nbthread %s\n  maxconn %s\n' "$workers" "$maxconn"
  for l in "$@"; do printf '  %s\n' "$l"; done
  printf 'defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  http-reuse always\n'
}

cpu_ticks() {
  local t=0 pid k
  for pid in $1 $(pgrep -P "${1%% *}" 2>/dev/null); do
    [ -r "/proc/$pid/stat" ] || continue
    k=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
    t=$((t + k))
  done
  echo "$t"
}
