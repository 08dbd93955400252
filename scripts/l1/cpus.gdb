# gdb commands for scripts/l1/run.sh: the SVM state of each of the L1
# QEMU's CPUs (TCG), for an L1 that stopped answering.  Needs the
# symbols of scripts/l1/build-qemu.sh's build.  hflags bit 21: in the
# guest (SVM); hflags2 bit 0: GIF, bit 2: NMI blocked, bit 6: NPT.
set pagination off
set $c = cpus_queue.tqh_first
while $c
  set $x = (X86CPU *) $c
  printf "cpu %d: guest=%d gif=%d nmi_blocked=%d halted=%d interrupt_request=%#x eip=%#lx vm_vmcb=%#lx vm_hsave=%#lx\n", $c->cpu_index, ($x->env.hflags >> 21) & 1, $x->env.hflags2 & 1, ($x->env.hflags2 >> 2) & 1, $c->halted, $c->interrupt_request, $x->env.eip, $x->env.vm_vmcb, $x->env.vm_hsave
  set $c = $c->node.tqe_next
end
