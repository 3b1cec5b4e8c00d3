#!/usr/bin/env bash
# secure.sh KIND ARGS... - run a holdfast binary on the secure path (CURVE),
# with keys generated on demand (issue 9: the tests use keys they generate,
# so the secure path is the path that is tested). KIND: aggregator, engine
# or cli. tests/e2e/lib.sh points E2E_AGG / E2E_ENG / E2E_CLI at the three
# thin scripts next to this one, so every script that starts "$E2E_ENG"
# gets keys without knowing about them.
#
# - Keys live in $E2E_KEYS (lib.sh sets it to <work dir>/keys in e2e_init;
#   a script that does not call e2e_init gets a per-user cache,
#   ${TMPDIR:-/tmp}/holdfast-e2e-keys-UID): server, server_secret,
#   engines/ (public, the aggregator's --engine-keys), operators/ (public,
#   its --operator-keys), private/ (each client's pair).
# - An engine's key is made the first time an engine with that --id starts
#   (a new file in engines/: the running aggregator takes it on its next
#   handshake, without a restart). Files appear atomically (written under a
#   dot-name, then renamed); generation is serialised by flock.
# - Arguments that already choose (--insecure, --cert) are passed through
#   untouched; HF_E2E_INSECURE=1 adds --insecure instead of keys.
# - exec: the PID a script gets from `"$E2E_ENG" ... &` is the binary's.
set -euo pipefail
kind=$1
shift
case $kind in
    aggregator) real=${E2E_REAL_AGG:?} ;;
    engine) real=${E2E_REAL_ENG:?} ;;
    cli) real=${E2E_REAL_CLI:?} ;;
    *) echo "secure.sh: unknown kind '$kind'" >&2; exit 2 ;;
esac
for a in "$@"; do
    case $a in
        --insecure | --cert | --cert=* | -h | --help) exec "$real" "$@" ;;
    esac
done
if [ $# -gt 0 ] && [ "$kind" = cli ]; then
    for a in "$@"; do [ "$a" = keygen ] && exec "$real" "$@"; done
fi
if [ -n "${HF_E2E_INSECURE:-}" ]; then
    exec "$real" --insecure "$@"
fi
keys=${E2E_KEYS:-${TMPDIR:-/tmp}/holdfast-e2e-keys-$(id -u)}
cli=${E2E_REAL_CLI:?}

# gen NAME PUBDIR KEYGEN-ARGS...: private/NAME{,_secret}, public copy in PUBDIR.
gen() {
    local name=$1 pubdir=$2
    shift 2
    [ -f "$keys/private/${name}_secret" ] && [ -f "$pubdir/$name" ] && return 0
    rm -f "$keys/private/$name" "$keys/private/${name}_secret"
    env -u LD_PRELOAD "$cli" keygen "$name" --dir "$keys/private" "$@" >/dev/null
    cp "$keys/private/$name" "$pubdir/.$name.tmp"
    mv -f "$pubdir/.$name.tmp" "$pubdir/$name"
}

mkdir -p "$keys/engines" "$keys/operators" "$keys/private"
chmod 700 "$keys" "$keys/private"
id=
if [ "$kind" = engine ]; then
    prev=
    for a in "$@"; do
        case $a in --id=*) id=${a#--id=} ;; esac
        [ "$prev" = --id ] && id=$a
        prev=$a
    done
fi
{
    flock 9
    if [ ! -f "$keys/server_secret" ]; then
        env -u LD_PRELOAD "$cli" keygen server --dir "$keys/private" --server >/dev/null
        mv -f "$keys/private/server_secret" "$keys/server_secret"
        mv -f "$keys/private/server" "$keys/server"
    fi
    gen operator "$keys/operators" --role operator
    gen reader "$keys/operators" --role reader
    if [ -n "$id" ]; then
        gen "engine-$id" "$keys/engines" --engine "$id"
    fi
} 9>"$keys/.lock"

case $kind in
    aggregator)
        exec "$real" --cert "$keys/server_secret" --engine-keys "$keys/engines" \
            --operator-keys "$keys/operators" "$@" ;;
    engine)
        [ -n "$id" ] || exec "$real" "$@"
        exec "$real" --cert "$keys/private/engine-${id}_secret" --server-key "$keys/server" "$@" ;;
    cli)
        exec "$real" --cert "$keys/private/operator_secret" --server-key "$keys/server" "$@" ;;
esac
