#!/usr/bin/env bash
# spool_corrupt.sh - ctest e2e_spool_corrupt: holdfast-engine refuses a spool
# directory that is foreign or damaged, says why, and leaves it untouched.
#
# For each case below, holdfast-engine --spool DIR must exit non-zero by
# itself (not by a signal, within 20 s), print on stderr a message naming DIR
# with HF_ECORRUPT and the case's reason, and leave every file in DIR but
# lock.mdb byte-identical (sha256 before/after; lock.mdb is LMDB's reader
# table, reinitialised by any open, and holds no data).
#
#   garbage         data.mdb is 256 KiB of random bytes
#   foreign-lmdb    a valid LMDB environment with a key in its main DB and
#                   no holdfast meta                     (needs mdb_load)
#   other-magic     a "meta" DB whose magic is not holdfast-spool (mdb_load)
#   other-version   a real spool whose meta version is 2  (mdb_dump/mdb_load)
#   a-store         an aggregator store directory given as the spool
#   truncated-head  a real spool's data.mdb cut to its first 3 pages
#   truncated-half  a real spool's data.mdb cut to half the pages it uses
# The mdb_load cases are skipped (and said so) without lmdb-utils.
#
# Environment: HF_BIN, HF_E2E_KEEP (see lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init spool_corrupt

have_lmdb_utils=1
command -v mdb_load >/dev/null && command -v mdb_dump >/dev/null || have_lmdb_utils=0

e2e_make_spool "$E2E_DIR/real-spool"
e2e_make_store "$E2E_DIR/real-store"
psize=4096
# The spool reserves its whole map on disk (fallocate), so the file is
# larger than what it uses: take the pages in use from LMDB's meta pages
# (last_pgno at offset 136 of each meta page, txnid at 144; the newer wins).
meta_u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
f=$E2E_DIR/real-spool/data.mdb
if [ "$(meta_u64 "$f" 144)" -ge "$(meta_u64 "$f" $((psize + 144)))" ]; then
    last_pgno=$(meta_u64 "$f" 136)
else
    last_pgno=$(meta_u64 "$f" $((psize + 136)))
fi
size=$(( (last_pgno + 1) * psize ))
say "a real spool: data.mdb $size bytes; a real store"

failed=()
check() { e2e_expect_refusal "$@" engine || failed+=("$1"); }

d=$E2E_DIR/garbage
mkdir "$d"
head -c 262144 /dev/urandom >"$d/data.mdb"
check garbage "$d" "MDB_INVALID|not an LMDB|not a usable LMDB"

if [ $have_lmdb_utils -eq 1 ]; then
    d=$E2E_DIR/foreign-lmdb
    mkdir "$d"
    printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n hello\n world\nDATA=END\n' |
        mdb_load "$d"
    check foreign-lmdb "$d" "foreign|without holdfast meta|no-meta"

    d=$E2E_DIR/other-magic
    mkdir "$d"
    printf 'VERSION=3\nformat=print\ndatabase=meta\ntype=btree\nHEADER=END\n magic\n not-holdfast-xx\n version\n \\00\\00\\00\\01\nDATA=END\n' |
        mdb_load "$d"
    check other-magic "$d" "magic"

    d=$E2E_DIR/other-version
    mkdir "$d"
    # version is u32 big-endian 1 in the dump's meta DB: make it 2
    mdb_dump -a "$E2E_DIR/real-spool" | sed 's/^ 00000001$/ 00000002/' >"$d.dump"
    grep -q '^ 00000002$' "$d.dump" || fail "other-version: no version value in the dump"
    mdb_load -f "$d.dump" "$d" 2>/dev/null
    check other-version "$d" "version"
else
    say "cases foreign-lmdb other-magic other-version SKIPPED: mdb_load/mdb_dump not" \
        "installed (Debian: lmdb-utils)"
fi

d=$E2E_DIR/a-store
cp -r "$E2E_DIR/real-store" "$d"
check a-store "$d" "magic|foreign"

d=$E2E_DIR/truncated-head
mkdir "$d"
cp "$E2E_DIR/real-spool/data.mdb" "$d/"
truncate -s $(( 3 * psize )) "$d/data.mdb"
check truncated-head "$d" "truncat|short|size|damaged|corrupt|MDB_"

d=$E2E_DIR/truncated-half
mkdir "$d"
cp "$E2E_DIR/real-spool/data.mdb" "$d/"
truncate -s $(( size / psize / 2 * psize )) "$d/data.mdb"
check truncated-half "$d" "truncat|short|size|damaged|corrupt|MDB_"

[ ${#failed[@]} -eq 0 ] || fail "cases failed: ${failed[*]}"
say "OK: every foreign or damaged spool was refused and left untouched"
