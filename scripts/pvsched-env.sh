# Shared settings for the build scripts; sourced, not run.
# The pinned QEMU: Debian's source package, fetched at build time.

PVSCHED_QEMU_PIN=${PVSCHED_QEMU_PIN:-1:10.0.13+ds-0+deb13u1}
PVSCHED_QEMU_SERIES=10.0
# Outside the repository, so a clean clone reuses it.
PVSCHED_CACHE=${PVSCHED_CACHE:-/var/cache/pvsched}
export CCACHE_DIR=${CCACHE_DIR:-$PVSCHED_CACHE/ccache}
# Object files are shared between clones: hash paths relative to the tree.
export CCACHE_NOHASHDIR=1

pvsched_top() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }
log() { printf '[pvsched] %s\n' "$*" >&2; }
die() { printf '[pvsched] error: %s\n' "$*" >&2; exit 1; }

# Where KVM work runs: the one rule.  On the host when its /dev/kvm is
# hardware virtualization (kvm_intel or kvm_amd); otherwise in the L1
# VM of scripts/l1/run.sh, whose KVM is real.  kvm_pvm runs every guest
# instruction through KVM's emulator, so it counts as none.
# PVSCHED_KVM=host|l1 forces either.  Sets PVSCHED_KVM_WHERE (host|l1)
# and PVSCHED_KVM_WHY.
pvsched_kvm_where() {
    local m
    case ${PVSCHED_KVM:-} in
        host|l1)
            PVSCHED_KVM_WHERE=$PVSCHED_KVM
            PVSCHED_KVM_WHY="forced by PVSCHED_KVM=$PVSCHED_KVM"
            return ;;
        '') ;;
        *) die "PVSCHED_KVM=$PVSCHED_KVM: say host or l1" ;;
    esac
    PVSCHED_KVM_WHERE=l1
    if [ ! -e /dev/kvm ]; then
        PVSCHED_KVM_WHY="this host has no /dev/kvm"
        return
    fi
    for m in kvm_intel kvm_amd; do
        if [ -d "/sys/module/$m" ]; then
            PVSCHED_KVM_WHERE=host
            PVSCHED_KVM_WHY="/dev/kvm is hardware virtualization ($m)"
            return
        fi
    done
    if [ -d /sys/module/kvm_pvm ]; then
        PVSCHED_KVM_WHY="/dev/kvm is kvm_pvm, which emulates guest instructions"
    else
        PVSCHED_KVM_WHY="/dev/kvm is neither kvm_intel nor kvm_amd"
    fi
}
