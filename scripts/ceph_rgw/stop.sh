#!/usr/bin/env bash
# Stop what start.sh started in RGW_DIR, by pid only (never by name).
# A pid is only signalled if its command line names $RGW_DIR/ceph.conf (guards against pid reuse).
# RGW_KEEP=1 keeps the directory (logs) instead of deleting it.
# RGW_STOP_GRACE seconds between SIGTERM and SIGKILL (default 2; the data is thrown away anyway,
# and a clean radosgw shutdown takes ~4.7 s, a memstore osd dumps all its data to disk on TERM).
set -uo pipefail
DIR=${RGW_DIR:-/tmp/ceph-rgw-test}
[ -d "$DIR" ] || exit 0

pids=()
for f in "$DIR/run/client.rgw.a.pid" "$DIR/run/osd.0.pid" "$DIR/run/mon.a.pid"; do
  [ -s "$f" ] && pids+=("$(cat "$f")")
done
[ -s "$DIR/pids" ] && pids+=($(cat "$DIR/pids"))

ours=()
for p in $(printf '%s\n' "${pids[@]}" | awk '!seen[$0]++'); do
  [ -r "/proc/$p/cmdline" ] || continue
  tr '\0' ' ' < "/proc/$p/cmdline" | grep -qF -- "$DIR/ceph.conf" && ours+=("$p")
done

# a daemonized process that exited stays a zombie until init reaps it: count that as gone
running() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# rgw first, then osd, then mon (order of the pid list above)
for p in "${ours[@]}"; do kill -TERM "$p" 2>/dev/null; done
grace=${RGW_STOP_GRACE:-2}
for i in $(seq 1 $((grace * 10))); do
  alive=0
  for p in "${ours[@]}"; do running "$p" && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.1
done
for p in "${ours[@]}"; do running "$p" && kill -KILL "$p" 2>/dev/null; done
echo "stopped: ${ours[*]:-none}"
[ "${RGW_KEEP:-0}" = 1 ] || rm -rf "$DIR"
