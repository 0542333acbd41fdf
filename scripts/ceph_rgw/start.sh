#!/usr/bin/env bash
# Start a throw-away single-node Ceph cluster (1 mon, 1 osd, no mgr) plus radosgw
# (beast frontend) on loopback, everything under one directory. Re-runnable:
# a previous instance in the same directory is stopped (by pid) and wiped first.
#
# Needs (Debian 12):  apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw
#
# Env knobs (all optional):
#   RGW_DIR        work dir                     (default /tmp/ceph-rgw-test)
#   RGW_PORT       S3 port on 127.0.0.1         (default 7480)
#   MON_PORT       mon msgr2 port on 127.0.0.1  (default 40000 + RGW_PORT % 10000)
#   (the osd binds free ports in 6800-7300 itself)
#   RGW_STORE      bluestore | memstore         (default bluestore: a sparse block file under RGW_DIR;
#                  memstore starts ~1.3 s faster but the osd holds every stored byte in RAM,
#                  ~1.9x the data incl. deleted-but-not-yet-GCed objects)
#   RGW_STORE_SIZE memstore capacity / bluestore block file size (default 8G / 20G; the file is sparse)
#   S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET     (defaults below)
#
# On success prints KEY=VALUE lines (also written to $RGW_DIR/env) and exits 0.
# Stop with stop.sh (same RGW_DIR).
set -euo pipefail

T0=$(date +%s%N)
ts() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[%3d.%02ds] %s\n' $((ms / 1000)) $((ms % 1000 / 10)) "$*" >&2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${RGW_DIR:-/tmp/ceph-rgw-test}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-$((40000 + RGW_PORT % 10000))}
STORE=${RGW_STORE:-bluestore}
if [ "$STORE" = memstore ]; then STORE_SIZE=${RGW_STORE_SIZE:-8G}; else STORE_SIZE=${RGW_STORE_SIZE:-20G}; fi
AK=${S3_ACCESS_KEY:-TESTACCESSKEY0000001}
SK=${S3_SECRET_KEY:-testsecretkey0000000000000000000000000001}
BUCKET=${S3_BUCKET:-test-bucket}

for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw curl)" >&2; exit 2; }
done
uuid() { cat /proc/sys/kernel/random/uuid; }

# 1. stop a previous instance in this dir, wipe it
if [ -d "$DIR" ]; then
  RGW_DIR="$DIR" "$HERE/stop.sh" >/dev/null 2>&1 || true
  rm -rf "$DIR"
fi
mkdir -p "$DIR"/{run,log,crash,mon.a,osd.0}
CONF="$DIR/ceph.conf"
FSID=$(uuid)

case "$STORE" in
  memstore)  STORE_CONF="osd objectstore = memstore
memstore device bytes = $(numfmt --from=iec "$STORE_SIZE")" ;;
  bluestore) STORE_CONF="osd objectstore = bluestore
bluestore block path = $DIR/osd.0/block.file
bluestore block create = true
bluestore block size = $(numfmt --from=iec "$STORE_SIZE")
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
bluestore fsck on mkfs = false
# every block-device close waits up to one aio poll period (default 250 ms); mkfs+mount close it ~12x
bdev aio poll ms = 10
bdev enable discard = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728" ;;
  *) echo "RGW_STORE must be memstore or bluestore" >&2; exit 2 ;;
esac

cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
osd crush chooseleaf type = 0
[mon]
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log
mon data avail warn = 1
mon data avail crit = 0
# one mon, no peers: propose osdmap/auth changes at once instead of batching for 1 s
# (every pool create / crush update is a map change; default 1.0 s made start-up ~10 s slower)
paxos propose interval = 0.01
paxos min wait = 0.001
[osd]
osd data = $DIR/osd.\$id
osd op num shards = 2
osd op num threads per shard = 1
$STORE_CONF
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw thread pool size = 32
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw enable usage log = false
EOF

for p in "$RGW_PORT" "$MON_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p on 127.0.0.1 is already in use (another instance? set RGW_PORT/MON_PORT)" >&2; exit 1
  fi
done

# on any failure from here on: stop whatever this run started (by pid), keep $DIR for its logs
trap 'rc=$?; echo "ceph_rgw/start.sh failed (rc=$rc); logs in $DIR/log" >&2; RGW_KEEP=1 RGW_STOP_GRACE=0 RGW_DIR="$DIR" "$HERE/stop.sh" >&2; exit $rc' ERR

# 2. keys for every entity go into one keyring; ceph-mon --mkfs imports them all into the auth db
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$DIR/keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
ceph-authtool "$DIR/keyring" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null

# 3. monitor
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
ceph-mon -c "$CONF" -i a 2>>"$DIR/log/mon.a.stderr"     # daemonizes, writes run/mon.a.pid
ts "mon started"

# 4. osd (id 0)
OSD_UUID=$(uuid)
ceph -c "$CONF" --connect-timeout 30 osd new "$OSD_UUID" >/dev/null
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd-mkfs.log" 2>&1
ceph-osd -c "$CONF" -i 0 2>>"$DIR/log/osd.0.stderr"     # daemonizes, writes run/osd.0.pid
ts "osd started"

# 5. radosgw (creates its pools itself on first start)
radosgw -c "$CONF" -n client.rgw.a 2>>"$DIR/log/client.rgw.a.stderr"  # daemonizes, writes run/client.rgw.a.pid
ts "radosgw started, waiting for http"
for i in $(seq 1 600); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RGW_PORT/" || true)
  [ "$code" = 200 ] && break
  if [ ! -s "$DIR/run/client.rgw.a.pid" ] || ! kill -0 "$(cat "$DIR/run/client.rgw.a.pid")" 2>/dev/null; then
    echo "radosgw died, see $DIR/log/client.rgw.a.log" >&2; tail -20 "$DIR/log/client.rgw.a.log" >&2; exit 1
  fi
  sleep 0.1
done
[ "$code" = 200 ] || { echo "radosgw not answering on $RGW_PORT" >&2; exit 1; }
ts "radosgw answers anonymous GET / (200)"

# 6. S3 user with fixed keys, and a bucket
radosgw-admin -c "$CONF" user create --uid=tester --display-name=tester \
  --access-key="$AK" --secret-key="$SK" >"$DIR/log/user-create.json"
ts "user created"
# (curl 7.88 does not send x-amz-content-sha256 itself; rgw then rejects the signature)
curl -sf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
  -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
  "http://127.0.0.1:$RGW_PORT/$BUCKET" -o /dev/null
ts "bucket $BUCKET created (first signed S3 request OK)"

cat > "$DIR/env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
S3_REGION=us-east-1
S3_ACCESS_KEY=$AK
S3_SECRET_KEY=$SK
S3_BUCKET=$BUCKET
RGW_DIR=$DIR
EOF
cat "$DIR/run/"*.pid | tr '\n' ' ' | sed 's/ $/\n/' > "$DIR/pids"   # also see run/*.pid
trap - ERR
cat "$DIR/env"
