"""Checks of the costs-that-travel outputs (costs.csv and the report's
"Costs that travel" sections) shared by the compare tests."""
import csv
import os
import re

FIELDS = ['config', 'label', 'sched', 'placement', 'cell', 'status', 'error', 'requests',
          'cpu_us', 'syscalls_per_req', 'ctxsw_per_req', 'user_us_per_req',
          'sys_us_per_req', 'instr_per_req', 'bare_metal_us_per_req', 'syscall_us',
          'ref_syscall_us']
# Numbers in every successful row (instructions only with callgrind).
NUMERIC = ['requests', 'cpu_us', 'syscalls_per_req', 'ctxsw_per_req', 'user_us_per_req',
           'sys_us_per_req', 'bare_metal_us_per_req', 'syscall_us', 'ref_syscall_us']


def number(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x and x >= 0 else None


def check_costs(out, configs, check, instructions=False, ncpu=None):
    """configs: the ids every placement must have a row for."""
    ncpu = ncpu or len(os.sched_getaffinity(0))
    places = ['same', 'split'] if ncpu > 1 else ['same']
    path = os.path.join(out, 'costs.csv')
    if not check(os.path.isfile(path), 'no costs.csv'):
        return
    with open(path, newline='') as f:
        header = next(csv.reader(f))
        f.seek(0)
        rows = list(csv.DictReader(f))
    check(header == FIELDS, 'costs.csv columns %s' % header)
    for cid in configs:
        for pl in places:
            check(any(r['config'] == cid and r['placement'] == pl for r in rows),
                  'costs.csv: no %s row at %s placement' % (cid, pl))
    for r in rows:
        if not check(r['status'] == 'ok', 'costs run failed: %s' % r):
            continue
        check(r['sched'] != '', 'no sched named: %s' % r)
        for k in NUMERIC + (['instr_per_req'] if instructions else []):
            check(number(r[k]) is not None, 'costs.csv %s=%r (%s, %s)' % (
                k, r[k], r['config'], r['placement']))
        if instructions:
            check(number(r['instr_per_req']) and float(r['instr_per_req']) > 10,
                  'implausible instructions per request: %s' % r['instr_per_req'])
        cpu, est = number(r['cpu_us']), number(r['bare_metal_us_per_req'])
        sysc, us, ref = (number(r['syscalls_per_req']), number(r['syscall_us']),
                         number(r['ref_syscall_us']))
        if None not in (cpu, est, sysc, us, ref):
            want = max(0.0, cpu - sysc * max(0.0, us - ref))
            # cpu_us is the tool's own per-request CPU; the estimate uses the
            # user+kernel split of the same window: equal but for rounding.
            check(abs(est - want) <= 0.05 * max(1.0, cpu),
                  'bare-metal estimate %s, expected %.3f from %s' % (est, want, r))
            check(us > 0, 'syscall cost not measured')
    path = os.path.join(out, 'report.md')
    text = open(path).read() if os.path.isfile(path) else ''
    for pl in places:
        check(re.search(r'^## Costs that travel \(%s CPU\)\n' % pl, text, re.M),
              'report.md: no costs section for %s placement' % pl)
    check(re.search(r"This machine's syscall cost: \*\*[0-9.]+ us\*\*", text),
          'report.md: the syscall cost is not stated')
    check('**an estimate**' in text and 'reference of' in text,
          'report.md: the bare-metal column is not labelled an estimate with its reference')
    check(re.search(r'^\| server \| sched \| cell \| syscalls \| ctx switches \| user µs '
                    r'\| kernel µs \| CPU µs \| user instructions \| bare-metal est\. µs \|',
                    text, re.M), 'report.md: no costs table header')
