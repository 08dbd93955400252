#!/usr/bin/env bash
# Run a command where KVM is real: on this host, or in the L1 VM
# (scripts/l1/run.sh), by the rule in pvsched-env.sh.  Says which, and
# why, first.
#
# usage: with-kvm.sh [--timeout SECONDS] [--] COMMAND [ARG...]
#        with-kvm.sh --where     say where, and why; run nothing
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"

where() {
    if [ "$PVSCHED_KVM_WHERE" = host ]; then
        log "KVM: on this host: $PVSCHED_KVM_WHY"
    else
        log "KVM: in an L1 VM (TCG, nested SVM; about 30 s to boot): $PVSCHED_KVM_WHY"
    fi
}

pvsched_kvm_where
if [ "${1:-}" = --where ]; then
    where
    exit 0
fi

l1_args=()
if [ "${1:-}" = --timeout ]; then
    l1_args=(--timeout "$2")
    shift 2
fi
[ "${1:-}" != -- ] || shift

where
[ "$PVSCHED_KVM_WHERE" = l1 ] || exec "$@"
exec bash "$(dirname "$0")/l1/run.sh" "${l1_args[@]}" -- "$@"
