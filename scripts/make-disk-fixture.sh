#!/usr/bin/env bash
# Builds the disk fixture that `dumpcrypt recover` is tested against (issue 14): a raw GPT disk
# image with one NTFS partition holding a fragmented `pagefile.sys` and a dedicated dump file
# whose $DATA runs spill into an $ATTRIBUTE_LIST extension record, and, for each file, its
# extents as The Sleuth Kit reads them (an independent reading of the same NTFS).
#
#   scripts/make-disk-fixture.sh OUTDIR
#
# writes, in OUTDIR:
#   disk.img            the disk: 512-byte sectors, GPT, partition 1 (NTFS) at partition.offset
#   partition.offset    the partition's first byte on the disk
#   pagefile.extents    `START LENGTH` per line: absolute byte offsets on the disk, VCN order
#   dedicated.extents   the same for \dedicated.dmp
#   cluster.size        the volume's cluster size in bytes
#
# Idempotent: OUTDIR's files are rebuilt on every run. No mount (no FUSE, no loop device): the
# volume is made in a file of its own with mkntfs, filled with ntfs-3g's offline tools, and
# copied into the disk at the partition offset. Fragmentation is made deliberately: the target
# file is extended (ntfsfallocate) and a new one-cluster keeper file written (ntfscp) in turn,
# so that each piece of the target lies between two keepers. (One keeper file extended in turn
# with the target does not do: once either needs an attribute list, ntfs-3g allocates each
# file's extensions next to its own last cluster, and the two stop interleaving.) The pagefile's data is then written over its
# allocation (ntfscp keeps the clusters of an existing file of a few runs); the dedicated
# file's is not (ntfscp reallocates the tail of a file with an attribute list), so it stays
# allocated with a valid data length of 0, which `recover` does not read: it reads the
# clusters, and the tests write their dump into them.
set -euo pipefail

out=${1:?usage: scripts/make-disk-fixture.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

need() { # command, Debian package
    command -v "$1" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$1" >/dev/null 2>&1 \
        || missing+=("$2")
}
missing=()
need sgdisk gdisk
need mkntfs ntfs-3g
need ntfscp ntfs-3g
need ntfsfallocate ntfs-3g
need istat sleuthkit
need ifind sleuthkit
need fsstat sleuthkit
if ((${#missing[@]})); then
    echo "make-disk-fixture: installing ${missing[*]}" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null; }; then
        echo "make-disk-fixture: cannot install ${missing[*]} (apt-get failed)" >&2
        exit 3
    fi
fi
export PATH=$PATH:/usr/sbin:/sbin

sector=512
cluster=4096
part_start_sector=2048                       # 1 MiB
part_sectors=$((64 * 1024 * 1024 / sector))  # 64 MiB
disk_bytes=$((80 * 1024 * 1024))
offset=$((part_start_sector * sector))

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
vol=$work/volume.img
truncate -s $((part_sectors * sector)) "$vol"
mkntfs -q -F -f -T -s $sector -c $cluster -p $part_start_sector -L dumpcrypt-fixture \
    "$vol" "$part_sectors" >/dev/null 2>&1
: >"$work/empty"
head -c $cluster /dev/zero >"$work/cluster"

quiet() { "$@" >/dev/null 2>&1 || { echo "make-disk-fixture: failed: $*" >&2; exit 1; }; }

# fragment TARGET KEEPER WRITE SIZES...: extends TARGET by each size (in clusters) in turn,
# writing a new one-cluster file KEEPER-N after each, so that TARGET takes one run per size;
# with WRITE=write, fills TARGET with pseudo-random bytes.
fragment() {
    local target=$1 keeper=$2 write=$3 at=0 kept=0 size
    shift 3
    quiet ntfscp "$vol" "$work/empty" "$target"
    for size in "$@"; do
        quiet ntfsfallocate -l $((size * cluster)) -o $((at * cluster)) "$vol" "$target"
        quiet ntfscp "$vol" "$work/cluster" "$keeper-$kept"
        at=$((at + size))
        kept=$((kept + 1))
    done
    if [[ $write == write ]]; then
        head -c $((at * cluster)) /dev/urandom >"$work/content"
        quiet ntfscp "$vol" "$work/content" "$target"
    fi
}

# pagefile.sys: 6 runs of 16 to 96 clusters.
fragment /pagefile.sys /keeper-pagefile write 32 96 16 64 48 80
# The dedicated dump file: 360 runs of 1 to 3 clusters, too many for one MFT record (3 bytes
# of mapping pairs each).
sizes=()
for i in $(seq 0 359); do sizes+=($((i * 7 % 3 + 1))); done
fragment /dedicated.dmp /keeper-dedicated allocate "${sizes[@]}"

# The disk: GPT, one Microsoft basic data partition, the volume copied in at its offset.
disk=$out/disk.img
rm -f "$disk"
truncate -s $disk_bytes "$disk"
quiet sgdisk --clear --set-alignment=2048 \
    --new=1:$part_start_sector:$((part_start_sector + part_sectors - 1)) \
    --typecode=1:0700 --change-name=1:"Basic data partition" "$disk"
dd if="$vol" of="$disk" bs=1M seek=$((offset / 1048576)) conv=notrunc status=none

# The independent reading: The Sleuth Kit on the disk image at the partition's sector offset.
osect=$((offset / sector))
fs_cluster=$(fsstat -o $osect "$disk" | awk -F': ' '/^Cluster Size/ {print $2}')
[[ $fs_cluster == "$cluster" ]] || { echo "make-disk-fixture: fsstat: cluster $fs_cluster" >&2; exit 1; }

extents() { # name in the volume, output file; fails unless every run is allocated
    local inode
    inode=$(ifind -o $osect -n "$1" "$disk")
    istat -r -o $osect "$disk" "$inode" >"$work/istat"
    awk -v base="$offset" -v cluster="$cluster" '
        /^Type: \$DATA \(128-/ && !/Name: [^N]/ { data = 1; next }
        /^Type:/ { data = 0 }
        data && /Starting address:/ {
            if ($0 ~ /Sparse|Filler/) { print "sparse run" > "/dev/stderr"; exit 1 }
            gsub(/,/, ""); printf "%d %d\n", base + $3 * cluster, $5 * cluster
        }' "$work/istat" >"$2"
    [[ -s $2 ]] || { echo "make-disk-fixture: no runs for $1" >&2; exit 1; }
    cp "$work/istat" "$2.istat"
}
extents /pagefile.sys "$out/pagefile.extents"
extents /dedicated.dmp "$out/dedicated.extents"
echo $offset >"$out/partition.offset"
echo $cluster >"$out/cluster.size"

# The conditions the tests rely on.
runs_p=$(wc -l <"$out/pagefile.extents")
runs_d=$(wc -l <"$out/dedicated.extents")
((runs_p >= 4 && runs_p <= 8)) || { echo "make-disk-fixture: pagefile has $runs_p runs" >&2; exit 1; }
((runs_d >= 150)) || { echo "make-disk-fixture: dedicated file has $runs_d runs" >&2; exit 1; }
grep -q '^Type: \$ATTRIBUTE_LIST' "$out/dedicated.extents.istat" || {
    echo "make-disk-fixture: the dedicated file has no \$ATTRIBUTE_LIST" >&2
    exit 1
}
echo "make-disk-fixture: $disk: partition at $offset, pagefile.sys $runs_p runs," \
    "dedicated.dmp $runs_d runs (with \$ATTRIBUTE_LIST)"
