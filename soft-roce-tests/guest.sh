#!/usr/bin/env bash
# Runs inside the Soft-RoCE VM that soft-roce-tests/run boots: brings up rxe0
# on lo, runs the perftest yardstick and the verbs self-test, and writes every
# log and a status line per test into the results directory shared with the
# host (the guest's own /tmp is lost at power-off).
#
# usage: guest.sh RESULTS_DIR SELFTEST_BINARY PERFTEST_ITERATIONS VERBS_SECONDS O2IB_SELFTEST_BINARY GLINT_BINARY|none O2IB_FS_BINARY
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

R=$1
SELFTEST=$2
ITERS=$3
VERBS_SECONDS=$4
O2IBTEST=$5
GLINT=${6:-none}
O2IBFS=${7:-none}
O2IB_PORT=18530
O2IB_TCP_PORT=18540
PERF_PORT=18600
VERBS_PORT=18515

say() { echo "guest: $*"; }
status() { echo "$*" >>"$R/status"; echo "== $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

echo "guest_start=$(now) guest_uptime=$(cut -d' ' -f1 /proc/uptime)" >"$R/guest-timing"
uname -a >"$R/guest-uname.txt"

# --- Soft-RoCE -------------------------------------------------------------
# rxe0 on lo carries the perftest yardstick at 127.0.0.1 (GID index 1). rdma_cm
# cannot connect over a loopback address on RoCE (it binds loopback like the
# wildcard, and route resolution then fails with ENODEV: rping -a 127.0.0.1
# shows the same), so the rdma_cm tests run on rxe1 over a dummy interface
# that holds a link-local address. The VM has no network device at all
# (qemu -net none): nothing here can leave the guest kernel.
CM_ADDR=169.254.77.1

# Without the devices nothing else can run: say so in the status file and
# stop, so the host fails loudly instead of counting nothing.
port_ready() { # DEVICE
    local i
    for i in $(seq 1 60); do
        ibv_devinfo -d "$1" 2>/dev/null | grep -q PORT_ACTIVE && break
        sleep 0.5
    done
    ibv_devinfo -d "$1" -v || return 1
    ibv_devinfo -d "$1" | grep -q PORT_ACTIVE || { say "$1 port never became active"; return 1; }
    ibv_devinfo -d "$1" | grep -Eq 'active_mtu:[[:space:]]*4096' || { say "$1 active MTU is not 4096"; return 1; }
}
rxe_up() {
    ip link set lo up || return 1
    modprobe rdma_rxe || return 1
    rdma link add rxe0 type rxe netdev lo || return 1
    port_ready rxe0 || return 1
    ibv_devinfo -d rxe0 -v | grep -Eq 'GID\[ *1\]:.*127\.0\.0\.1' || { say "rxe0 has no GID index 1 for 127.0.0.1"; return 1; }
    modprobe dummy || return 1
    ip link add srt0 type dummy || return 1
    ip link set srt0 mtu 9000 || return 1
    ip addr add "$CM_ADDR/32" dev srt0 || return 1
    ip link set srt0 up || return 1
    rdma link add rxe1 type rxe netdev srt0 || return 1
    port_ready rxe1 || return 1
    rdma link show
}
t0=$(now)
if rxe_up >"$R/rxe-up.log" 2>&1; then
    status "PASS rxe0 on lo (127.0.0.1, GID 1) and rxe1 on a dummy ($CM_ADDR) up, MTU 4096 ($(since "$t0") s)"
else
    status "FAIL Soft-RoCE devices did not come up: see rxe-up.log"
    echo "FATAL rxe" >>"$R/status"
    tail -n 30 "$R/rxe-up.log"
    exit 1
fi
echo "rxe_ready=$(now)" >>"$R/guest-timing"

# --- perftest yardstick ------------------------------------------------------
wait_listen() {
    local port=$1 i
    for i in $(seq 1 120); do
        ss -ltn 2>/dev/null | grep -q ":$port " && return 0
        sleep 0.25
    done
    return 1
}

perf() { # TOOL LABEL SERVER-ADDRESS ARGS...
    local tool=$1 label=$2 addr=$3
    shift 3
    local args=(-s 1048576 -n "$ITERS" -F -p "$PERF_PORT" "$@")
    local out="$R/$tool-$label" t0 crc=1 try
    t0=$(now)
    timeout 240 "$tool" "${args[@]}" >"$out-server.txt" 2>&1 &
    local server=$!
    # The server listens on TCP, or through rdma_cm with -R (invisible to
    # ss): wait for the TCP port when there is one, and retry the client
    # while the server is still starting.
    case " $* " in
        *" -R "*) sleep 1 ;;
        *) wait_listen "$PERF_PORT" || true ;;
    esac
    for try in $(seq 1 20); do
        timeout 240 "$tool" "${args[@]}" "$addr" >"$out-client.txt" 2>&1
        crc=$?
        [ "$crc" -eq 0 ] && break
        kill -0 "$server" 2>/dev/null || break
        sleep 0.5
    done
    wait "$server"
    local src=$?
    local bw
    bw=$(awk '$1 == 1048576 && NF >= 5 { print $4 }' "$out-client.txt" | tail -n 1)
    if [ "$crc" -eq 0 ] && [ "$src" -eq 0 ] && [ -n "$bw" ]; then
        echo "$tool ($label) size=1048576 iterations=$ITERS MiB/s=$bw" >>"$R/bandwidth"
        status "PASS $tool ($label) 1 MiB x $ITERS: $bw MiB/s ($(since "$t0") s)"
    else
        status "FAIL $tool ($label): client exit $crc after $try tries, server exit $src, bandwidth '${bw}' (see ${out##*/}-*.txt)"
    fi
}

# The yardstick, as briefed: rxe0, 127.0.0.1, GID index 1.
perf ib_write_bw rxe0-lo 127.0.0.1 -d rxe0 -x 1
perf ib_read_bw rxe0-lo 127.0.0.1 -d rxe0 -x 1
# The same over rdma_cm on rxe1 runs beside the o2ib LND's bandwidth below.
echo "perftest_done=$(now)" >>"$R/guest-timing"

# --- the glint verbs layer -------------------------------------------------
timeout 300 "$SELFTEST" --addr "$CM_ADDR" --port "$VERBS_PORT" --mode all --seconds "$VERBS_SECONDS" \
    >"$R/verbs_selftest.txt" 2>&1
rc=$?
cat "$R/verbs_selftest.txt"
grep -E '^(PASS|FAIL) ' "$R/verbs_selftest.txt" | sed 's/^\(PASS\|FAIL\) /\1 verbs: /' >>"$R/status"
grep -E '^verbs-bw ' "$R/verbs_selftest.txt" >>"$R/bandwidth"
if [ "$rc" -eq 0 ]; then
    status "PASS verbs_selftest exited 0"
else
    status "FAIL verbs_selftest exited $rc (see verbs_selftest.txt)"
fi
echo "verbs_done=$(now)" >>"$R/guest-timing"

# --- the o2ib LND and RPC over it ------------------------------------------
timeout 400 "$O2IBTEST" --addr "$CM_ADDR" --port "$O2IB_PORT" --tcp-port "$O2IB_TCP_PORT" --mode checks \
    >"$R/o2ib_selftest.txt" 2>&1
rc=$?
# Each bandwidth right after perftest's on the same device through
# rdma_cm: the emulated machine's speed drifts within minutes, so figures
# taken apart do not compare.
for op in WRITE READ; do
    tool=ib_write_bw
    [ "$op" = READ ] && tool=ib_read_bw
    perf "$tool" rxe1-cm "$CM_ADDR" -d rxe1 -R
    timeout 120 "$O2IBTEST" --addr "$CM_ADDR" --port "$((O2IB_PORT + 20))" --tcp-port "$((O2IB_TCP_PORT + 30))" \
        --mode bench --only "RDMA $op" --seconds "$VERBS_SECONDS" >>"$R/o2ib_selftest.txt" 2>&1 || rc=1
done
cat "$R/o2ib_selftest.txt"
grep -E '^(PASS|FAIL) ' "$R/o2ib_selftest.txt" | sed 's/^\(PASS\|FAIL\) /\1 o2ib: /' >>"$R/status"
grep -E '^o2ib-lnd-bw ' "$R/o2ib_selftest.txt" >>"$R/bandwidth"
if [ "$rc" -eq 0 ]; then
    status "PASS o2ib_selftest exited 0"
else
    status "FAIL o2ib_selftest exited $rc (see o2ib_selftest.txt)"
fi
# The LND beside perftest at 1 MiB: code against code, both CPU-bound here.
ratio() { # OP TOOL LABEL
    local lnd ref
    lnd=$(awk -v op="$1" '$1 == "o2ib-lnd-bw" && $2 == op { sub("MiB/s=", "", $6); print $6 }' "$R/bandwidth")
    ref=$(awk -v t="$2 ($3)" 'index($0, t) == 1 { sub(".*MiB/s=", ""); print }' "$R/bandwidth")
    [ -n "$lnd" ] && [ -n "$ref" ] && awk -v b="$ref" 'BEGIN { exit !(b > 0) }' &&
        awk -v a="$lnd" -v b="$ref" -v op="$1" -v t="$2 ($3)" \
            'BEGIN { printf "ratio o2ib LND %s %.1f MiB/s / %s %.2f MiB/s = %.0f%%\n", op, a, t, b, 100 * a / b }'
}
{
    ratio WRITE ib_write_bw rxe1-cm
    ratio READ ib_read_bw rxe1-cm
    ratio WRITE ib_write_bw rxe0-lo
    ratio READ ib_read_bw rxe0-lo
} >>"$R/bandwidth"
echo "o2ib_done=$(now)" >>"$R/guest-timing"

# --- glint bench fabric over o2ib, beside perftest (it runs perftest itself) --
if [ "$GLINT" != none ]; then
    t0=$(now)
    timeout 240 "$GLINT" bench fabric --net o2ib --addr "$CM_ADDR" --seconds "$VERBS_SECONDS" \
        >"$R/glint-bench-fabric-o2ib.txt" 2>&1
    rc=$?
    cat "$R/glint-bench-fabric-o2ib.txt"
    grep -E '^bulk 1 MiB' "$R/glint-bench-fabric-o2ib.txt" | sed 's/^/glint bench fabric --net o2ib: /' >>"$R/bandwidth"
    if [ "$rc" -eq 0 ] && [ "$(grep -c 'ratio' "$R/glint-bench-fabric-o2ib.txt")" -eq 2 ]; then
        status "PASS glint bench fabric --net o2ib, beside ib_write_bw/ib_read_bw ($(since "$t0") s)"
    else
        status "FAIL glint bench fabric --net o2ib exited $rc (see glint-bench-fabric-o2ib.txt)"
    fi
fi
echo "bench_done=$(now)" >>"$R/guest-timing"

# --- the file system over o2ib ------------------------------------------------
# Each server needs an address of its own (rdma_cm listens on one port per
# address): two more on srt0, which rxe1 picks up as GIDs.
FS_ADDRS=(169.254.77.1 169.254.77.2 169.254.77.3)
fs_addrs_up() {
    local a i
    for a in "${FS_ADDRS[@]:1}"; do
        ip addr add "$a/32" dev srt0 || return 1
    done
    for i in $(seq 1 40); do
        ibv_devinfo -d rxe1 -v | grep -q "169.254.77.3" && return 0
        sleep 0.25
    done
    say "rxe1 has no GID for 169.254.77.3"
    return 1
}
if [ "$O2IBFS" != none ] && fs_addrs_up >"$R/fs-addrs.log" 2>&1; then
    t0=$(now)
    timeout 300 "$O2IBFS" --addrs "$(IFS=,; echo "${FS_ADDRS[*]}")" --tcp-port 18560 --mib 16 \
        >"$R/o2ib_fs.txt" 2>&1
    rc=$?
    cat "$R/o2ib_fs.txt"
    grep -E '^(PASS|FAIL) ' "$R/o2ib_fs.txt" | sed 's/^\(PASS\|FAIL\) /\1 o2ib fs: /' >>"$R/status"
    if [ "$rc" -eq 0 ]; then
        status "PASS o2ib_fs exited 0 ($(since "$t0") s)"
    else
        status "FAIL o2ib_fs exited $rc (see o2ib_fs.txt)"
    fi
    # The same file system as processes of the glint binary: `glint up
    # --net o2ib` finds rxe1's netdev and its addresses by itself, and
    # mounts it with FUSE (root in the guest: fuser mounts /dev/fuse
    # itself, no fusermount needed).
    if [ "$GLINT" != none ]; then
        t0=$(now)
        ST=/tmp/glint-up-o2ib
        MNT=/tmp/glint-o2ib-mnt
        mkdir -p "$MNT"
        fuse_ready() {
            [ -c /dev/fuse ] || modprobe fuse || return 1
            local i
            for i in $(seq 1 20); do
                [ -c /dev/fuse ] && return 0
                sleep 0.25
            done
            say "no /dev/fuse after modprobe fuse"
            return 1
        }
        if fuse_ready >"$R/fuse-up.log" 2>&1; then
            status "PASS /dev/fuse in the guest ($(ls -l /dev/fuse))"
        else
            status "FAIL /dev/fuse: see fuse-up.log"
        fi
        timeout 120 "$GLINT" up --net o2ib --osts 2 --state "$ST" --mount "$MNT" --port 18570 \
            --metrics-port 19700 >"$R/glint-up-o2ib.txt" 2>&1
        rc=$?
        cat "$ST"/log/*.log >>"$R/glint-up-o2ib.txt" 2>/dev/null
        cat "$R/glint-up-o2ib.txt"
        if [ "$rc" -eq 0 ] && grep -q '169.254.77.3@o2ib' "$R/glint-up-o2ib.txt" &&
            grep -q 'glint oss: serving 1 target(s) on 169.254.77.3@o2ib,169.254.77.3@tcp' "$R/glint-up-o2ib.txt" &&
            grep -q " $MNT fuse.glint " /proc/mounts; then
            status "PASS glint up --net o2ib: MDS and 2 OSSs on rxe1's addresses, mounted on $MNT ($(since "$t0") s)"
        else
            status "FAIL glint up --net o2ib exited $rc, mount: $(grep " $MNT " /proc/mounts) (see glint-up-o2ib.txt)"
        fi
        fuse_io() {
            local t1
            # 8 MiB over both OSTs (1 MiB stripes), in and out through
            # the mount, with the page cache out of the way.
            "$GLINT" lfs setstripe -c 2 -S 1M "$MNT/f" || say "lfs setstripe failed: one stripe"
            head -c $((8 << 20)) /dev/urandom >/tmp/fuse-src || return 1
            t1=$(now)
            dd if=/tmp/fuse-src of="$MNT/f" bs=1M oflag=direct status=none || return 1
            echo "dd in: 8 MiB in $(since "$t1") s"
            t1=$(now)
            dd if="$MNT/f" of=/tmp/fuse-back bs=1M iflag=direct status=none || return 1
            echo "dd out: 8 MiB in $(since "$t1") s"
            cmp /tmp/fuse-src /tmp/fuse-back || return 1
            # The OSSs (metrics ports 19701, 19702) moved the data by RDMA
            # and nothing over tcp.
            local port m rdma tcp total=0
            for port in 19701 19702; do
                m=$(curl -s "http://127.0.0.1:$port/metrics") || return 1
                rdma=$(awk '/^glint_fabric_rdma_(read|write)_bytes_total\{.*lnd="o2ib"/ { s += $NF } END { print s + 0 }' <<<"$m")
                tcp=$(awk '/^glint_fabric_(tx|rx)_bytes_total\{.*lnd="tcp"/ { s += $NF } END { print s + 0 }' <<<"$m")
                echo "OSS metrics :$port: RDMA bytes $rdma, tcp bytes $tcp"
                grep -E '^glint_fabric_(rdma|tcp_fallbacks|bulk)' <<<"$m"
                [ "$tcp" -eq 0 ] || { say "OSS :$port moved $tcp bytes over tcp"; return 1; }
                total=$((total + rdma))
            done
            # 8 MiB pulled by RDMA READ for the write, 8 MiB pushed by RDMA
            # WRITE for the read.
            [ "$total" -ge $((16 << 20)) ] || { say "the OSSs moved $total bytes by RDMA"; return 1; }
        }
        if grep -q " $MNT fuse.glint " /proc/mounts && fuse_io >"$R/fuse-io.txt" 2>&1; then
            status "PASS FUSE over o2ib: 8 MiB dd in and out of the mount, identical, OSSs moved it by RDMA, 0 tcp bytes ($(grep -h '^dd' "$R/fuse-io.txt" | tr '\n' ' '))"
        else
            status "FAIL FUSE over o2ib: see fuse-io.txt"
        fi
        cat "$R/fuse-io.txt" 2>/dev/null
        timeout 60 "$GLINT" down --state "$ST" >>"$R/glint-up-o2ib.txt" 2>&1
    fi
else
    status "FAIL the file system over o2ib did not run: no o2ib_fs binary, or srt0's extra addresses (see fs-addrs.log)"
fi
echo "fs_done=$(now)" >>"$R/guest-timing"
echo "DONE" >>"$R/status"
