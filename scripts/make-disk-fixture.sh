#!/usr/bin/env bash
# Builds the disk fixture that `dumpcrypt recover` is tested against (issue 14): a raw GPT disk
# image with one NTFS partition holding a fragmented `pagefile.sys` and a dedicated dump file
# whose $DATA runs spill into an $ATTRIBUTE_LIST extension record, a second disk with
# 4096-byte sectors holding a fragmented `pagefile.sys`, and, for each file, its extents as
# The Sleuth Kit reads them (an independent reading of the same NTFS).
#
#   scripts/make-disk-fixture.sh OUTDIR
#
# writes, in OUTDIR:
#   disk.img              512-byte sectors, GPT, partition 1 (NTFS) at partition.offset
#   partition.offset      the partition's first byte on the disk
#   pagefile.extents      `START LENGTH` per line: absolute byte offsets on the disk, VCN order
#   dedicated.extents     the same for \dedicated.dmp
#   *.extents.istat       what istat printed, for people
#   cluster.size          the volumes' cluster size in bytes
#   disk4k.img            4096-byte sectors (GPT written by fdisk -b 4096; sgdisk cannot
#                         set the sector size of an image file), partition at partition4k.offset
#   partition4k.offset, pagefile4k.extents
#
# Exits 3 when its tools (gdisk, fdisk, ntfs-3g, sleuthkit) are missing and cannot be installed
# with apt-get, 1 on any other failure, among them a fixture that does not have the shape the
# tests rely on (4 to 8 runs for the page files, 150 or more and an $ATTRIBUTE_LIST for the
# dedicated file).
#
# Idempotent: OUTDIR's files are rebuilt on every run. No mount (no FUSE, no loop device): each
# volume is made in a file of its own with mkntfs, filled with ntfs-3g's offline tools, and
# copied into its disk at the partition offset. Fragmentation is made deliberately: the target
# file is extended (ntfsfallocate) and a new one-cluster keeper file written (ntfscp) in turn,
# so that each piece of the target lies between two keepers. (One keeper file extended in turn
# with the target does not do: once either needs an attribute list, ntfs-3g allocates each
# file's extensions next to its own last cluster, and the two stop interleaving.) The
# pagefile's data is then written over its allocation (ntfscp keeps the clusters of an
# existing file of a few runs); the dedicated file's is not (ntfscp reallocates the tail of a
# file with an attribute list), so it stays allocated with a valid data length of 0, which
# `recover` does not read: it reads the clusters, and the tests write their dump into them.
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
need fdisk fdisk
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

cluster=4096
part_bytes=$((64 * 1024 * 1024))
disk_bytes=$((80 * 1024 * 1024))
offset=$((1024 * 1024))

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/empty"
head -c $cluster /dev/zero >"$work/cluster"

quiet() { "$@" >/dev/null 2>&1 || { echo "make-disk-fixture: failed: $*" >&2; exit 1; }; }

# new_volume SECTOR: a fresh NTFS volume in $vol, for a partition at $offset.
new_volume() {
    vol=$work/volume-$1.img
    rm -f "$vol"
    truncate -s $part_bytes "$vol"
    quiet mkntfs -q -F -f -T -s "$1" -c $cluster -p $((offset / $1)) -L dumpcrypt-fixture \
        "$vol" $((part_bytes / $1))
}

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

# The 512-byte-sector volume. pagefile.sys: 6 runs of 16 to 96 clusters.
new_volume 512
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
    --new=1:$((offset / 512)):$(((offset + part_bytes) / 512 - 1)) \
    --typecode=1:0700 --change-name=1:"Basic data partition" "$disk"
dd if="$vol" of="$disk" bs=1M seek=$((offset / 1048576)) conv=notrunc,sparse status=none

# extents DISK SECTOR NAME OUTPUT: The Sleuth Kit's reading of NAME's $DATA runs on the
# partition at $offset of DISK; fails on a sparse run or none.
extents() {
    local disk=$1 sector=$2 osect=$((offset / $2)) inode fs_cluster
    fs_cluster=$(fsstat -b "$sector" -o $osect "$disk" | awk -F': ' '/^Cluster Size/ {print $2}')
    [[ $fs_cluster == "$cluster" ]] || { echo "make-disk-fixture: fsstat: cluster $fs_cluster" >&2; exit 1; }
    inode=$(ifind -b "$sector" -o $osect -n "$3" "$disk")
    istat -b "$sector" -r -o $osect "$disk" "$inode" >"$work/istat"
    awk -v base="$offset" -v cluster="$cluster" '
        /^Type: \$DATA \(128-/ && !/Name: [^N]/ { data = 1; next }
        /^Type:/ { data = 0 }
        data && /Starting address:/ {
            if ($0 ~ /Sparse|Filler/) { print "sparse run" > "/dev/stderr"; exit 1 }
            gsub(/,/, ""); printf "%d %d\n", base + $3 * cluster, $5 * cluster
        }' "$work/istat" >"$4"
    [[ -s $4 ]] || { echo "make-disk-fixture: no runs for $3" >&2; exit 1; }
    cp "$work/istat" "$4.istat"
}
extents "$disk" 512 /pagefile.sys "$out/pagefile.extents"
extents "$disk" 512 /dedicated.dmp "$out/dedicated.extents"
echo $offset >"$out/partition.offset"
echo $cluster >"$out/cluster.size"

# The 4096-byte-sector disk: the same partition offset, a volume of 4096-byte sectors.
new_volume 4096
fragment /pagefile.sys /keeper-pagefile write 24 40 8 64 32
disk4k=$out/disk4k.img
rm -f "$disk4k"
truncate -s $disk_bytes "$disk4k"
printf 'g\nn\n1\n%d\n%d\nt\n11\nw\n' $((offset / 4096)) $(((offset + part_bytes) / 4096 - 1)) \
    | quiet fdisk -b 4096 "$disk4k"
dd if="$vol" of="$disk4k" bs=1M seek=$((offset / 1048576)) conv=notrunc,sparse status=none
extents "$disk4k" 4096 /pagefile.sys "$out/pagefile4k.extents"
echo $offset >"$out/partition4k.offset"

# The conditions the tests rely on.
runs() { wc -l <"$1"; }
for file in pagefile pagefile4k; do
    n=$(runs "$out/$file.extents")
    ((n >= 4 && n <= 8)) || { echo "make-disk-fixture: $file has $n runs" >&2; exit 1; }
done
runs_d=$(runs "$out/dedicated.extents")
((runs_d >= 150)) || { echo "make-disk-fixture: dedicated file has $runs_d runs" >&2; exit 1; }
grep -q '^Type: \$ATTRIBUTE_LIST' "$out/dedicated.extents.istat" || {
    echo "make-disk-fixture: the dedicated file has no \$ATTRIBUTE_LIST" >&2
    exit 1
}
echo "make-disk-fixture: $disk: partition at $offset, pagefile.sys $(runs "$out/pagefile.extents")" \
    "runs, dedicated.dmp $runs_d runs (with \$ATTRIBUTE_LIST); $disk4k (4096-byte sectors):" \
    "pagefile.sys $(runs "$out/pagefile4k.extents") runs"
