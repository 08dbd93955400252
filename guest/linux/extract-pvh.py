#!/usr/bin/env python3
"""Turn Debian's bzImage into a PVH-bootable vmlinux for this host's KVM.

    extract-pvh.py BZIMAGE VMLINUX

1. Decompress the kernel (Debian: CONFIG_KERNEL_XZ) into the ELF vmlinux.
   It carries a PVH entry note (CONFIG_PVH=y), so QEMU's -kernel starts
   it in 64-bit mode directly: no real-mode setup, no decompressor.

2. Replace the int3 of the boot-time int3 self-test with what its handler
   would do.  This host's /dev/kvm (kvm_pvm) runs stretches of guest kernel
   code through KVM's instruction emulator, which cannot deliver a
   protected-mode software interrupt: the self-test's int3 stops the VM
   with "KVM internal error ... emulation failure".  alternative.c's
   int3_selftest() does

       lea  4(%rsp), %rdi      ; &val
       int3 ; nop x4           ; handler: emulate "call int3_magic"
       cmpl $1, 4(%rsp)        ; BUG_ON(val != 1)

   and int3_magic() is "movl $1, (%rdi); jmp __x86_return_thunk".  The
   five bytes "int3; nop x4" become that very call, so the check still
   passes.  Nothing else in the kernel changes.  If the pattern is not
   found (another kernel build), the image is left as is, with a warning.

3. For the same reason, drop the fwait of fpu__drop() (x87 exceptions
   pending from user space: none with FXSAVE-era code), which KVM's
   emulator does not implement either and which every exiting task runs:
   "fwait; movq $0, %gs:fpu_fpregs_owner_ctx" becomes "nop; movq ...".

Python 3 stdlib only.  SPDX-License-Identifier: GPL-2.0-or-later
"""

import lzma
import re
import struct
import sys


def load_segments(elf):
    """[(file offset, vaddr, size)] of the PT_LOAD segments of an ELF64."""
    phoff, = struct.unpack_from('<Q', elf, 0x20)
    phentsize, phnum = struct.unpack_from('<HH', elf, 0x36)
    segs = []
    for i in range(phnum):
        p_type, _, off, vaddr, _, filesz = struct.unpack_from(
            '<IIQQQQ', elf, phoff + i * phentsize)
        if p_type == 1:
            segs.append((off, vaddr, filesz))
    return segs


def vaddr(segs, off):
    for s_off, s_vaddr, size in segs:
        if s_off <= off < s_off + size:
            return s_vaddr + off - s_off
    return None


def patch_int3_selftest(elf):
    segs = load_segments(elf)
    sites = [m.start() + 5 for m in
             re.finditer(rb'\x48\x8d\x7c\x24.\xcc\x90\x90\x90\x90', elf,
                         re.S)]
    if len(sites) != 1:
        return f'int3 self-test: {len(sites)} candidate sites, not patched'
    site = sites[0]
    # int3_magic sits in .init.text next to int3_selftest: the closest
    # "movl $1,(%rdi); jmp rel32" within 64 KiB.
    magics = [m.start() for m in
              re.finditer(rb'\xc7\x07\x01\x00\x00\x00\xe9', elf)
              if abs(m.start() - site) < 0x10000]
    if not magics:
        return 'int3 self-test: int3_magic not found, not patched'
    magic = min(magics, key=lambda o: abs(o - site))
    v_site, v_magic = vaddr(segs, site), vaddr(segs, magic)
    if v_site is None or v_magic is None:
        return 'int3 self-test: not in a loaded segment, not patched'
    rel = (v_magic - (v_site + 5)) & 0xffffffff
    elf[site:site + 5] = b'\xe8' + struct.pack('<I', rel)
    return (f'int3 self-test at {v_site:#x}: int3 -> call int3_magic '
            f'({v_magic:#x})')


def patch_fpu_drop_fwait(elf):
    sites = [m.start() for m in
             re.finditer(rb'\x9b\x65\x48\xc7\x05....\x00\x00\x00\x00', elf,
                         re.S)]
    if len(sites) != 1:
        return f'fpu__drop fwait: {len(sites)} candidate sites, not patched'
    elf[sites[0]] = 0x90
    return (f'fpu__drop fwait at {vaddr(load_segments(elf), sites[0]):#x}: '
            f'-> nop')


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split('\n\n')[1])
    data = open(sys.argv[1], 'rb').read()
    off = data.find(b'\xfd7zXZ\x00')
    if off < 0:
        sys.exit(f'{sys.argv[1]}: no xz payload (not a Debian kernel?)')
    elf = bytearray(lzma.LZMADecompressor().decompress(data[off:]))
    if elf[:4] != b'\x7fELF':
        sys.exit(f'{sys.argv[1]}: payload is not an ELF image')
    print(patch_int3_selftest(elf), file=sys.stderr)
    print(patch_fpu_drop_fwait(elf), file=sys.stderr)
    with open(sys.argv[2], 'wb') as f:
        f.write(elf)


if __name__ == '__main__':
    main()
