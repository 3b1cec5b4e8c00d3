#!/usr/bin/env bash
# aggregator_store_corrupt.sh - ctest e2e_aggregator_store_corrupt:
# holdfast-aggregator refuses a --data directory that is foreign or damaged,
# says why, and leaves it untouched.
#
# For each case below, holdfast-aggregator --data DIR must exit non-zero by
# itself (not by a signal, within 20 s; starting to listen counts as
# accepting), print on stderr a message naming DIR with HF_ECORRUPT and the
# case's reason, and leave every file in DIR but lock.mdb byte-identical
# (sha256 before/after; lock.mdb is LMDB's reader table and holds no data).
#
#   garbage         data.mdb is 256 KiB of random bytes
#   foreign-lmdb    a valid LMDB environment with a key in its main DB and
#                   no holdfast meta                     (needs mdb_load)
#   other-magic     a "meta" DB whose magic is not holdfast-store (mdb_load)
#   other-version   a real store whose meta version is 2  (mdb_dump/mdb_load)
#   a-spool         an engine spool directory given as the store
#   truncated-head  a real store's data.mdb cut to its first 3 pages
#   truncated-half  a real store's data.mdb cut to half its size
# The mdb_load cases are skipped (and said so) without lmdb-utils.
#
# Environment: HF_BIN, HF_E2E_KEEP (see lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init aggregator_store_corrupt

have_lmdb_utils=1
command -v mdb_load >/dev/null && command -v mdb_dump >/dev/null || have_lmdb_utils=0

e2e_make_spool "$E2E_DIR/real-spool"
e2e_make_store "$E2E_DIR/real-store"
psize=4096
size=$(stat -c %s "$E2E_DIR/real-store/data.mdb")
say "a real store: data.mdb $size bytes; a real spool"

failed=()
check() { e2e_expect_refusal "$@" aggregator || failed+=("$1"); }

d=$E2E_DIR/garbage
mkdir "$d"
head -c 262144 /dev/urandom >"$d/data.mdb"
check garbage "$d" "MDB_INVALID|not an LMDB|not a usable LMDB"

if [ $have_lmdb_utils -eq 1 ]; then
    d=$E2E_DIR/foreign-lmdb
    mkdir "$d"
    printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n hello\n world\nDATA=END\n' |
        mdb_load "$d"
    check foreign-lmdb "$d" "foreign|no-meta|without holdfast meta"

    d=$E2E_DIR/other-magic
    mkdir "$d"
    printf 'VERSION=3\nformat=print\ndatabase=meta\ntype=btree\nHEADER=END\n magic\n not-holdfast-xx\n version\n \\00\\00\\00\\01\nDATA=END\n' |
        mdb_load "$d"
    check other-magic "$d" "magic"

    d=$E2E_DIR/other-version
    mkdir "$d"
    # the meta DB's version (u32 BE 2) follows its key "version" (hex below)
    mdb_dump -a "$E2E_DIR/real-store" |
        awk 'prev == " 76657273696f6e" && $0 == " 00000002" { $0 = " 00000009" } { print; prev = $0 }' \
        >"$d.dump"
    grep -q "^ 00000009$" "$d.dump" || fail "other-version: no version value in the dump"
    mdb_load -f "$d.dump" "$d" 2>/dev/null
    check other-version "$d" "version"
else
    say "cases foreign-lmdb other-magic other-version SKIPPED: mdb_load/mdb_dump not" \
        "installed (Debian: lmdb-utils)"
fi

d=$E2E_DIR/a-spool
cp -r "$E2E_DIR/real-spool" "$d"
check a-spool "$d" "magic|foreign"

d=$E2E_DIR/truncated-head
mkdir "$d"
cp "$E2E_DIR/real-store/data.mdb" "$d/"
truncate -s $(( 3 * psize )) "$d/data.mdb"
check truncated-head "$d" "truncat|short|size|damaged|corrupt|MDB_"

d=$E2E_DIR/truncated-half
mkdir "$d"
cp "$E2E_DIR/real-store/data.mdb" "$d/"
truncate -s $(( size / psize / 2 * psize )) "$d/data.mdb"
check truncated-half "$d" "truncat|short|size|damaged|corrupt|MDB_"

[ ${#failed[@]} -eq 0 ] || fail "cases failed: ${failed[*]}"
say "OK: every foreign or damaged store was refused and left untouched"
