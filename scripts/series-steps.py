#!/usr/bin/env python3
"""Regenerate patches/steps/*.patch from the overlay files.

The intermediate versions of hw/pvsched/meson.build, hw/pvsched/trace-events
and qapi/pvsched.json that patches/series names are, for the last two,
selections of the final file: the trace-events sections of the source
files a commit has, the QAPI definitions a commit needs.  After a change
to those files (new properties, new trace points), run this, then
scripts/check-series.sh: the steps follow the final files.  The meson.build
versions are written out below.  --check only says whether the stored
steps are what this would write.

usage: series-steps.py [--check]
"""
import os
import re
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(TOP, path)) as f:
        return f.read()


def diff(path, old, new):
    """A git diff of @path from @old to @new (None: no file)."""
    with tempfile.TemporaryDirectory() as d:
        a = b = '/dev/null'
        if old is not None:
            a = os.path.join(d, 'a')
            open(a, 'w').write(old)
        if new is not None:
            b = os.path.join(d, 'b')
            open(b, 'w').write(new)
        out = subprocess.run(['git', 'diff', '--no-index', '--no-color', '-U3',
                              a, b], capture_output=True, text=True).stdout
    res = ['diff --git a/%s b/%s\n' % (path, path)]
    for line in out.splitlines(True)[1:]:
        if line.startswith('index '):
            continue
        if line.startswith('--- '):
            line = '--- /dev/null\n' if old is None else '--- a/%s\n' % path
        elif line.startswith('+++ '):
            line = '+++ b/%s\n' % path
        elif line.startswith('@@ '):
            line = re.sub(r'^(@@ [^@]* @@).*$', r'\1', line)
        res.append(line)
    return ''.join(res)


def ending(text):
    return text if text.endswith('\n') else text + '\n'


# qapi/pvsched.json: the header, then definitions by name, with the
# definitions they use.
JSON = read('qapi/pvsched.json')
BLOCKS = JSON.split('\n\n')


def qapi_name(block):
    m = re.search(r"^\{ '(?:enum|struct|union|alternate|command|event)': "
                  r"'([^']+)'", block, re.M)
    return m.group(1) if m else None


NAMES = [qapi_name(b) for b in BLOCKS]
FIRST_DEF = next(i for i, n in enumerate(NAMES) if n)
assert all(NAMES[FIRST_DEF:]), 'qapi/pvsched.json: a block that defines nothing'
HEADER = '\n\n'.join(BLOCKS[:FIRST_DEF])
# Until query-pvsched exists, the header does not speak of it.
HEADER_EARLY = re.sub(r'  The schema is shared by\n(#.*\n)*?# answers query-pvsched '
                      r'with no device\.', '', HEADER)
assert HEADER_EARLY != HEADER, 'qapi/pvsched.json: header changed, see series-steps.py'


def qapi_closure(keep):
    """@keep and every definition of this file they refer to."""
    keep, todo = set(), list(keep)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        block = BLOCKS[NAMES.index(name)]
        code = '\n'.join(l for l in block.splitlines() if not l.startswith('#'))
        todo += [n for n in re.findall(r"'([A-Za-z][\w-]*)'", code)
                 if n in NAMES and n != name]
    return keep


def qapi(keep):
    keep = qapi_closure(keep)
    return ending('\n\n'.join([HEADER_EARLY] +
                              [b for b, n in zip(BLOCKS[FIRST_DEF:], NAMES[FIRST_DEF:])
                               if n in keep]))


POLICY_QAPI = {'PvschedMode', 'PvschedBoostClass', 'PvschedPolicyTunables',
               'PvschedPolicyProperties', 'PvschedPolicyInfo', 'PvschedPolicyChange'}
EVENTS_QAPI = {'PVSCHED_THROTTLED', 'PVSCHED_AREA_CHANGED'}

# hw/pvsched/trace-events: the header, then one section per source file.
TRACE = read('hw/pvsched/trace-events').split('\n\n')
TRACE_FILES = [re.match(r'# (\S+\.c)\n', s).group(1) for s in TRACE[1:]]


def trace(files):
    return ending('\n\n'.join([TRACE[0]] + [s for s, f in zip(TRACE[1:], TRACE_FILES)
                                            if f in files]))


# hw/pvsched/meson.build, before the final one.
MESON = read('hw/pvsched/meson.build')
MESON_HEAD = '''# SPDX-License-Identifier: GPL-2.0-or-later

# Nothing where pvsched cannot be (CONFIG_PVSCHED_ALLOWED).
if not config_host_data.get('CONFIG_PVSCHED_ALLOWED', false)
  subdir_done()
endif

'''


def meson(comment, files, tail=''):
    return (MESON_HEAD + comment + "system_ss.add(when: 'CONFIG_PVSCHED', if_true: files(\n" +
            ''.join("  '%s',\n" % f for f in files) + '))\n' + tail)


MESON_0006 = meson('# Target-independent: the state machine and the scheduling backend.\n',
                   ['host-sched.c', 'vcpu-state.c'])
MESON_0009 = meson('''# Target-independent: the state machine, the scheduling backend and the
# emulator threads' own scheduling.
''', ['emulator.c', 'host-sched.c', 'vcpu-state.c'])
MESON_0010 = meson('''# Target-independent: the state machine, the scheduling backend and the
# policy object.
''', ['emulator.c', 'host-sched.c', 'policy.c', 'vcpu-state.c'])
MESON_0013 = meson('''# Target-independent: the state machine, the scheduling backend, the
# guest area and the policy object.
''', ['emulator.c', 'guest-area.c', 'host-sched.c', 'policy.c', 'vcpu-state.c', 'vcpu.c'],
                   '''# x86/KVM: the device with its MSR and CPUID glue.
specific_ss.add(when: 'CONFIG_PVSCHED', if_true: files('pvsched.c'))
''')
# 0015 (QMP) has the final file but for HMP, which 0016 adds.
MESON_0015 = MESON.replace("system_ss.add(files('hmp.c'))\n", '')
assert MESON_0015 != MESON, 'hw/pvsched/meson.build: no hmp.c line, see series-steps.py'

TRACE_0006 = trace({'host-sched.c'})
TRACE_0009 = trace({'host-sched.c', 'emulator.c'})
TRACE_0010 = trace({'host-sched.c', 'emulator.c', 'policy.c'})
QAPI_0010 = qapi(POLICY_QAPI)
QAPI_0013 = qapi(POLICY_QAPI | EVENTS_QAPI)

STEPS = {
    'steps/0006-hw-pvsched-meson.build-trace-events.patch': [
        ('hw/pvsched/meson.build', None, MESON_0006),
        ('hw/pvsched/trace-events', None, TRACE_0006)],
    'steps/0009-hw-pvsched-meson.build-trace-events.patch': [
        ('hw/pvsched/meson.build', MESON_0006, MESON_0009),
        ('hw/pvsched/trace-events', TRACE_0006, TRACE_0009)],
    'steps/0010-hw-pvsched-meson.build-trace-events-qapi.patch': [
        ('hw/pvsched/meson.build', MESON_0009, MESON_0010),
        ('hw/pvsched/trace-events', TRACE_0009, TRACE_0010),
        ('qapi/pvsched.json', None, QAPI_0010)],
    'steps/0013-hw-pvsched-meson.build-qapi.patch': [
        ('hw/pvsched/meson.build', MESON_0010, MESON_0013),
        ('qapi/pvsched.json', QAPI_0010, QAPI_0013)],
    'steps/0015-hw-pvsched-meson.build.patch': [
        ('hw/pvsched/meson.build', MESON_0013, MESON_0015)],
}


def main():
    check = sys.argv[1:] == ['--check']
    stale = []
    for name, changes in STEPS.items():
        text = ''.join(diff(*c) for c in changes)
        path = os.path.join(TOP, 'patches', name)
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            stale.append(name)
            if not check:
                open(path, 'w').write(text)
    for name in stale:
        print('%s %s' % ('stale:' if check else 'wrote', name))
    sys.exit(1 if check and stale else 0)


if __name__ == '__main__':
    main()
