#!/usr/bin/env bash
# run.sh - the installed libholdfast, used from outside (ctest
# install_libholdfast, label "install").
#
#   1. cmake --install $HF_BUILD --prefix $WORK/prefix (the same install
#      step `make install` runs), then check the layout: daemons, CLI,
#      libholdfast.so (+ SONAME link) and .a, headers, holdfast.pc, the CMake
#      package, systemd units (ExecStart pointing into the prefix), man pages.
#      systemd-analyze verify on the units when it is installed.
#   2. libholdfast.so exports only hf_* functions (nm -D).
#   3. Every installed header compiles on its own from the installed tree.
#   4. consumer/consumer.c built four ways and run:
#        pkg-config, shared  cc $(pkg-config --cflags --libs holdfast)
#        pkg-config, static  cc $(pkg-config --cflags --libs holdfast-static)
#                            (libholdfast.a, its dependencies shared)
#        find_package, shared / static   (consumer/CMakeLists.txt)
#      The shared programs must need libholdfast.so.*, the static ones must not.
#
# Environment: HF_BUILD (the configured and built tree, required), HF_CC (C
# compiler, default cc), HF_SANITIZE (1: the tree was built with
# -fsanitize, so the consumers are too). The work directory is removed on
# success and kept (and named) on failure. Exit 77 = skipped (a tool is
# missing). Runs in a few seconds; nothing is left running.
set -u -o pipefail

: "${HF_BUILD:?HF_BUILD must name the build tree}"
CC=${HF_CC:-cc}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hf-install.XXXXXX")
PREFIX=$WORK/prefix
SAN_FLAGS=()
if [ "${HF_SANITIZE:-0}" = 1 ]; then
    SAN_FLAGS=("-fsanitize=address,undefined")
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
fi

fail() {
    echo "install test FAILED: $*" >&2
    echo "(work directory kept: $WORK)" >&2
    exit 1
}
step() { echo "--- $*"; }

for tool in cmake pkg-config nm readelf "$CC"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool not found"; rm -rf "$WORK"; exit 77; }
done

step "cmake --install $HF_BUILD --prefix $PREFIX"
cmake --install "$HF_BUILD" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; fail "cmake --install"; }

# The library directory as GNUInstallDirs chose it (lib, lib64, lib/<multiarch>).
PC=$(find "$PREFIX" -name holdfast.pc -path '*/pkgconfig/*' | head -n1)
[ -n "$PC" ] || fail "holdfast.pc not installed"
LIBDIR=$(dirname "$(dirname "$PC")")

step "layout"
for f in bin/holdfast-engine bin/holdfast-aggregator bin/holdfast \
         include/holdfast/hf_err.h include/holdfast/hf_log.h include/holdfast/hf_time.h \
         include/holdfast/hf_supervisor.h include/holdfast/hf_proto.h \
         include/holdfast/hf_record.h include/holdfast/hf_hal.h include/holdfast/hf_hwsim.h \
         include/holdfast/hf_channel.h include/holdfast/hf_dispatcher.h \
         include/holdfast/hf_engine.h \
         lib/systemd/system/holdfast-aggregator.service \
         lib/systemd/system/holdfast-engine@.service \
         share/man/man1/holdfast.1 share/man/man1/holdfast-engine.1 \
         share/man/man1/holdfast-aggregator.1; do
    [ -e "$PREFIX/$f" ] || fail "missing $f"
done
for f in libholdfast.a libholdfast.so cmake/Holdfast/HoldfastConfig.cmake \
         cmake/Holdfast/HoldfastConfigVersion.cmake cmake/Holdfast/HoldfastTargets.cmake; do
    [ -e "$LIBDIR/$f" ] || fail "missing $LIBDIR/$f"
done
[ ! -e "$PREFIX/include/holdfast/hf_aggregator.h" ] || fail "hf_aggregator.h installed (not part of libholdfast)"
for f in "$PREFIX"/include/holdfast/*; do
    case "$(basename "$f")" in hf_*.h) ;; *) fail "a non-public file in include/holdfast: $f" ;; esac
done
SONAME=$(readelf -d "$LIBDIR/libholdfast.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ -n "$SONAME" ] || fail "libholdfast.so has no SONAME"
[ -e "$LIBDIR/$SONAME" ] || fail "no $SONAME link next to libholdfast.so"
for u in holdfast-aggregator.service holdfast-engine@.service; do
    grep -q "^ExecStart=$PREFIX/bin/holdfast-" "$PREFIX/lib/systemd/system/$u" ||
        fail "$u: ExecStart does not point into $PREFIX/bin"
    grep -q '@[A-Z_]*@' "$PREFIX/lib/systemd/system/$u" && fail "$u: unsubstituted @VAR@"
done

# systemd-analyze verify, when there is one: syntax, known keys, ExecStart
# exists. The template is checked as an instance.
if command -v systemd-analyze >/dev/null 2>&1; then
    step "systemd-analyze verify"
    mkdir -p "$WORK/units"
    cp "$PREFIX"/lib/systemd/system/holdfast-*.service "$WORK/units/"
    (cd "$WORK/units" && timeout 60 systemd-analyze verify --man=no \
        ./holdfast-aggregator.service ./holdfast-engine@install-test.service) >"$WORK/verify.log" 2>&1 ||
        { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify"; }
    if [ -s "$WORK/verify.log" ]; then
        cat "$WORK/verify.log" >&2
        fail "systemd-analyze verify printed warnings"
    fi
else
    echo "(systemd-analyze not found: units not verified)"
fi

step "exported symbols"
BAD=$(nm -D --defined-only "$LIBDIR/libholdfast.so" | awk '$2 ~ /^[TDBRVW]$/ && $3 !~ /^hf_/ {print $3}')
[ -z "$BAD" ] || fail "libholdfast.so exports non-hf_ symbols: $BAD"
NT=$(nm -D --defined-only "$LIBDIR/libholdfast.so" | awk '$2 == "T"' | wc -l)
[ "$NT" -gt 50 ] || fail "libholdfast.so exports only $NT functions"
echo "$NT functions, all hf_*; SONAME $SONAME"

export PKG_CONFIG_PATH=$LIBDIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
PC_CFLAGS=$(pkg-config --cflags holdfast) || fail "pkg-config --cflags holdfast"
PC_LIBS=$(pkg-config --libs holdfast) || fail "pkg-config --libs holdfast"
PCS_CFLAGS=$(pkg-config --cflags holdfast-static) || fail "pkg-config --cflags holdfast-static"
PCS_LIBS=$(pkg-config --libs holdfast-static) || fail "pkg-config --libs holdfast-static"
pkg-config --print-requires-private holdfast | grep -q '^libzmq' ||
    fail "holdfast.pc: libzmq not in Requires.private"
case "$PC_CFLAGS" in *"$PREFIX"*) ;; *) fail "pkg-config cflags do not point into the prefix: $PC_CFLAGS" ;; esac

step "each installed header compiles alone"
for h in "$PREFIX"/include/holdfast/*.h; do
    echo "#include <holdfast/$(basename "$h")>" >"$WORK/hdr.c"
    # shellcheck disable=SC2086
    "$CC" -std=c11 -Wall -Wextra -Werror -Wstrict-prototypes -pedantic-errors $PC_CFLAGS \
        -c "$WORK/hdr.c" -o "$WORK/hdr.o" 2>"$WORK/hdr.log" ||
        { cat "$WORK/hdr.log" >&2; fail "$(basename "$h") does not compile on its own"; }
done

SRC=$HERE/consumer/consumer.c
CWARN=(-std=c11 -Wall -Wextra -Werror)

step "pkg-config, shared"
# shellcheck disable=SC2086
"$CC" "${CWARN[@]}" "${SAN_FLAGS[@]}" $PC_CFLAGS "$SRC" -o "$WORK/pc_shared" $PC_LIBS \
    2>"$WORK/cc.log" || { cat "$WORK/cc.log" >&2; fail "cc (pkg-config, shared)"; }

step "pkg-config, static"
# shellcheck disable=SC2086
"$CC" "${CWARN[@]}" "${SAN_FLAGS[@]}" $PCS_CFLAGS "$SRC" -o "$WORK/pc_static" $PCS_LIBS \
    2>"$WORK/cc.log" || { cat "$WORK/cc.log" >&2; fail "cc (pkg-config, static)"; }

step "find_package(Holdfast), shared and static"
CM_FLAGS="${SAN_FLAGS[*]}"
cmake -S "$HERE/consumer" -B "$WORK/cmake-build" -DCMAKE_PREFIX_PATH="$PREFIX" \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$CM_FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$CM_FLAGS" \
    >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log" >&2; fail "cmake configure (consumer)"; }
cmake --build "$WORK/cmake-build" >>"$WORK/cmake.log" 2>&1 ||
    { cat "$WORK/cmake.log" >&2; fail "cmake build (consumer)"; }

needs_lib() { readelf -d "$1" | grep -q 'NEEDED.*\[libholdfast\.so'; }
for b in pc_shared cmake-build/consumer_shared; do
    needs_lib "$WORK/$b" || fail "$b does not use libholdfast.so"
done
for b in pc_static cmake-build/consumer_static; do
    needs_lib "$WORK/$b" && fail "$b needs libholdfast.so (expected the archive)"
done

step "run"
for b in pc_shared pc_static cmake-build/consumer_shared cmake-build/consumer_static; do
    spool=$WORK/spool-$(basename "$b")
    mkdir -p "$spool"
    # LD_LIBRARY_PATH: the prefix is not on the loader's path (the cmake
    # build's RPATH would find it anyway; pkg-config's link does not).
    out=$(LD_LIBRARY_PATH=$LIBDIR timeout 30 "$WORK/$b" "$spool" 2>"$WORK/run.log") ||
        { cat "$WORK/run.log" >&2; fail "$b exited non-zero"; }
    [ "$out" = ok ] || fail "$b printed '$out', expected 'ok'"
    echo "$b: ok"
done

rm -rf "$WORK"
echo "install test passed"
