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

4. Give user space a working system call.  This host mishandles both ways
   into the kernel that an unmodified guest's user space has: a 64-bit
   SYSCALL jumps to the guest's LSTAR but leaves the vCPU in user mode
   (the entry code then faults, and the process gets SIGSEGV), and an
   int $0x80 reaches the guest as #UD, at the int instruction.  Every
   other exception from user space is delivered as it should be.  So the
   #UD gate of the IDT (def_idts, which idt_setup_traps() installs) is
   pointed at a stub that, for a #UD raised in user mode on "int $0x80",
   moves the saved RIP past the instruction (the frame of a fault
   becomes the frame of the trap: neither has an error code) and jumps
   to entry_INT80_compat, the kernel's own int $0x80 entry; any other
   #UD goes to asm_exc_invalid_op as before.  The stub is written over
   three of the Xen PV exception trampolines (xen_asm_exc_*: "pop %rcx;
   pop %r11; jmp asm_exc_*", 16 bytes each), which only a Xen PV guest
   ever runs.  The guest's userland is i386, whose system calls are all
   int $0x80 once the 32-bit vDSO is told not to use SYSCALL or
   SYSENTER (clearcpuid=110,111 in kernel-args).  The stub reads the
   instruction from user memory in kernel mode: kernel-args keeps SMAP
   off (clearcpuid=308) and mitigations=off keeps PTI off.

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


def idt_gate(elf, vector, bits):
    """File offset of the def_idts entry for vector (struct idt_data:
    u32 vector, u32 segment = __KERNEL_CS, u16 bits, pad, void *addr)."""
    pat = struct.pack('<IIH', vector, 0x10, bits)
    hits = [m.start() for m in re.finditer(re.escape(pat), elf)]
    return hits[0] if len(hits) == 1 else None


XEN_TRAMPOLINE = re.compile(rb'\x59\x41\x5b\xe9(....)', re.S)


def patch_int80(elf):
    segs = load_segments(elf)
    ud = idt_gate(elf, 6, 0x8e00)           # interrupt gate, DPL 0
    int80 = idt_gate(elf, 0x80, 0xee00)     # interrupt gate, DPL 3
    if ud is None or int80 is None:
        return 'int $0x80: IDT entries not found, not patched'
    v_ud, = struct.unpack_from('<Q', elf, ud + 16)
    v_int80, = struct.unpack_from('<Q', elf, int80 + 16)
    # xen_asm_exc_invalid_op: the trampoline that jumps to the #UD entry.
    base = None
    for m in XEN_TRAMPOLINE.finditer(elf):
        v = vaddr(segs, m.start())
        rel, = struct.unpack('<i', m.group(1))
        if v is not None and v % 16 == 0 and v + 8 + rel == v_ud:
            base = m.start()
            break
    if base is None or not all(XEN_TRAMPOLINE.match(elf, base + 16 * i)
                               for i in range(3)):
        return 'int $0x80: Xen PV trampolines not found, not patched'
    v_base = vaddr(segs, base)

    code = bytearray(
        b'\xf6\x44\x24\x08\x03'          # testb $3, 8(%rsp)  (CS: user?)
        b'\x74\x18'                      # jz    other
        b'\x50'                          # push  %rax
        b'\x48\x8b\x44\x24\x08'          # mov   8(%rsp), %rax  (user RIP)
        b'\x66\x81\x38\xcd\x80'          # cmpw  $0x80cd, (%rax)
        b'\x58'                          # pop   %rax
        b'\x75\x0a'                      # jne   other
        b'\x48\x83\x04\x24\x02'          # addq  $2, (%rsp)
        b'\xe9\x00\x00\x00\x00'          # jmp   entry_INT80_compat
        b'\xe9\x00\x00\x00\x00')         # other: jmp asm_exc_invalid_op
    for end, target in ((len(code) - 5, v_int80), (len(code), v_ud)):
        struct.pack_into('<i', code, end - 4, target - (v_base + end))
    assert len(code) == 36 and code[6] == 36 - 5 - 7 and \
        code[20] == 36 - 5 - 21             # both branches reach "other"
    elf[base:base + len(code)] = code
    struct.pack_into('<Q', elf, ud + 16, v_base)
    return (f'int $0x80: #UD gate -> stub at {v_base:#x} '
            f'(entry_INT80_compat {v_int80:#x}, asm_exc_invalid_op '
            f'{v_ud:#x})')


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
    print(patch_int80(elf), file=sys.stderr)
    with open(sys.argv[2], 'wb') as f:
        f.write(elf)


if __name__ == '__main__':
    main()
