#!/usr/bin/env python3
"""Unit test of tools/openloop.py, the logic of `tools/compare --latency`,
with fake inputs only: no server, no sleep, no real /proc/stat (about a
tenth of a second).

usage: test_openloop.py TOOLS_DIR

- the CPU use from two /proc/stat samples (idle + iowait idle, guest not
  counted twice), and the quiet gate: passes at once on a quiet machine,
  waits until it is quiet, gives up after its bounded wait and says how
  busy the machine was, records without waiting when off;
- the rate at a fraction of a capacity, a capacity as the median of the
  successful closed-loop runs, the fraction and placement parsers;
- the driver with fake servers: every server's open-loop rate is the
  fraction of ITS OWN capacity, the gate runs before every run, the order
  is reversed on odd repeats, a server whose capacity runs all failed gets
  error rows and no open-loop run;
- medians, the quiet column, the report table (sched and placement in every
  row, "not quiet: X %", a load not carried marked "(short)") and the
  auto-vs-normal lines, the CSV columns.
Standard library only.
"""
import csv
import os
import sys
import tempfile

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print('FAIL: ' + msg)
    return cond


def stat_text(user, nice, system, idle, iowait, irq=0, softirq=0, steal=0, guest=0):
    return ('cpu  %d %d %d %d %d %d %d %d %d 0\ncpu0 1 2 3 4 5 6 7 8 9 0\nintr 1 2\n' % (
        user, nice, system, idle, iowait, irq, softirq, steal, guest))


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_cpu_use(ol):
    busy, total = ol.parse_cpu_times(stat_text(100, 0, 50, 800, 50, guest=30))
    check((busy, total) == (150, 1000), 'parse_cpu_times: %r, want (150, 1000)' %
          ((busy, total),))
    try:
        ol.parse_cpu_times('intr 1\n')
        check(False, 'parse_cpu_times accepted a text without a cpu line')
    except ValueError:
        pass
    samples = iter([(150, 1000), (175, 1100)])
    slept = []
    pct = ol.cpu_busy_pct(0.5, read=lambda: next(samples), sleep=slept.append)
    check(abs(pct - 25.0) < 1e-9, 'cpu_busy_pct: %r, want 25' % pct)
    check(slept == [0.5], 'cpu_busy_pct slept %r, want [0.5]' % slept)
    samples = iter([(150, 1000), (150, 1000)])
    check(ol.cpu_busy_pct(0.5, read=lambda: next(samples), sleep=lambda s: None) == 0.0,
          'cpu_busy_pct without elapsed jiffies is not 0')


def gate_with(ol, pcts, threshold=5.0, max_wait=3.0):
    clock = FakeClock()
    seen = []

    def measure(sample_s):
        clock.t += sample_s
        v = pcts[min(len(seen), len(pcts) - 1)]
        seen.append(v)
        return v
    return ol.QuietGate(threshold=threshold, max_wait=max_wait, sample_s=0.5,
                        measure=measure, clock=clock), seen


def test_gate(ol):
    g, seen = gate_with(ol, [1.0])
    r = g.wait()
    check(r['quiet_ok'] is True and r['quiet_pct'] == 1.0 and len(seen) == 1,
          'a quiet machine: %r after %d samples' % (r, len(seen)))
    g, seen = gate_with(ol, [60.0, 30.0, 4.9])
    r = g.wait()
    check(r['quiet_ok'] is True and len(seen) == 3 and abs(r['quiet_wait_s'] - 1.5) < 1e-9,
          'quiet on the third sample: %r after %d samples' % (r, len(seen)))
    g, seen = gate_with(ol, [80.0, 90.0, 70.0], max_wait=3.0)
    r = g.wait()
    check(r['quiet_ok'] is False and r['quiet_pct'] == 70.0,
          'never quiet: %r, want not ok with the last CPU use' % r)
    check(len(seen) == 6 and r['quiet_wait_s'] <= 3.0,
          'never quiet: %d samples over %.1f s, want 6 within the 3 s bound' % (
              len(seen), r['quiet_wait_s']))
    g, seen = gate_with(ol, [5.0])
    check(g.wait()['quiet_ok'] is False, 'exactly the threshold counts as quiet')
    g, seen = gate_with(ol, [50.0], max_wait=0)
    r = g.wait()
    check(r['quiet_ok'] is False and len(seen) == 1, 'max_wait 0: one sample, %r' % r)
    g, seen = gate_with(ol, [50.0], threshold=None)
    r = g.wait()
    check(r['quiet_ok'] is None and r['quiet_pct'] == 50.0 and len(seen) == 1,
          'gate off: one sample recorded, no verdict: %r' % r)
    check('5 %' in ol.QuietGate().describe(), 'describe() does not state the threshold')

    class O:
        quiet, quiet_wait = '5', None
    check(ol.gate_from(O(), smoke=True).max_wait == 0, '--smoke: the gate waits')
    check(ol.gate_from(O()).max_wait == ol.QUIET_WAIT_S, 'default wait')
    O.quiet = 'off'
    check(ol.gate_from(O()).threshold is None, '--quiet=off')
    for bad in ('0', '101', 'x'):
        O.quiet = bad
        try:
            ol.gate_from(O())
            check(False, '--quiet=%s accepted' % bad)
        except ValueError:
            pass


def test_rates(ol):
    check(ol.rate_for(20000, 0.5) == 10000, 'rate_for(20000, 0.5)')
    check(ol.rate_for(33333.9, 0.9) == 30000, 'rate_for(33333.9, 0.9): %r' %
          ol.rate_for(33333.9, 0.9))
    check(ol.rate_for(1, 0.5) == 1, 'rate_for never offers 0')
    check(ol.rate_for(None, 0.5) is None and ol.rate_for(0, 0.5) is None,
          'rate_for without a capacity')
    runs = [{'status': 'ok', 'rtt_per_s': v} for v in (100.0, 300.0, 200.0)]
    runs.append({'status': 'error', 'rtt_per_s': 1e9})
    check(ol.capacity_of(runs) == 200.0, 'capacity: the median of the successful runs')
    check(ol.capacity_of([{'status': 'error'}]) is None, 'capacity of failed runs')
    check(ol.parse_loads('0.5, 0.9') == [0.5, 0.9], 'parse_loads')
    fixed = ol.parse_loads('0.5,20000/s')
    check(fixed == [0.5, 20000] and isinstance(fixed[1], ol.FixedRate),
          'parse_loads with a fixed rate: %r' % fixed)
    check(ol.rate_for(90000, fixed[1]) == 20000 and ol.rate_for(None, fixed[1]) == 20000,
          'a fixed rate is offered whatever the capacity')
    check(ol.load_name(fixed[1]) == '20000/s', 'load_name of a fixed rate')
    for bad in ('0', '1.5', '', 'x', '0/s', '2.5/s', 'x/s'):
        try:
            ol.parse_loads(bad)
            check(False, 'parse_loads(%r) accepted' % bad)
        except ValueError:
            pass
    check(ol.placements_from('split,same,split') == ['split', 'same'], 'placements_from')
    try:
        ol.placements_from('both')
        check(False, 'placements_from(both) accepted')
    except ValueError:
        pass
    check(ol.load_name(0.5) == '50%' and ol.load_name(0.925) == '92.5%', 'load_name')
    check(ol.interleaved('abc', 0) == list('abc') and ol.interleaved('abc', 1) == list('cba'),
          'interleaved')


def fake_targets(ol, calls):
    """Three servers: a fast one, a slow one, one whose closed loop fails."""
    caps = {'fast': 40000.0, 'slow': 10000.0}

    def mk(cid, sched):
        def run(cell, pl, rate):
            calls.append((cid, cell, pl, rate))
            if cid == 'broken' and rate is None:
                return {'status': 'error', 'error': 'no server'}
            scale = 1.0 if pl == 'same' else 1.5     # split carries more
            if rate is None:
                return {'status': 'ok', 'rtt_per_s': caps[cid] * scale, 'p50_us': 50.0,
                        'p99_us': 90.0, 'p999_us': 200.0, 'server_us_per_rt': 5.0}
            tail = 1000.0 if cid == 'fast' else 100.0
            # the slow one carries only half of 9,000/s and more
            carried = rate / 2.0 if cid == 'slow' and rate >= 9000 else float(rate)
            return {'status': 'ok', 'rtt_per_s': carried, 'p50_us': 40.0,
                    'p99_us': tail, 'p999_us': tail * 2,
                    'server_us_per_rt': 6.0 if cid == 'fast' else 4.0}
        return ol.Target(cid, cid + ' label', sched, run)
    return [mk('fast', 'auto'), mk('slow', 'normal'), mk('broken', 'n/a (external)')]


def test_driver(ol):
    calls = []
    gate_calls = []

    class Gate:
        def wait(self):
            gate_calls.append(1)
            return {'quiet_pct': 12.0 if len(gate_calls) == 2 else 1.0,
                    'quiet_ok': len(gate_calls) != 2, 'quiet_wait_s': 0.0}

        def describe(self):
            return 'fake gate'
    targets = fake_targets(ol, calls)
    rows = ol.run_table(targets, ['64 B x 50'], ['same', 'split'], [0.5, 0.9], 2, Gate())
    ran = [r for r in rows if 'quiet_pct' in r]
    check(len(calls) == len(gate_calls) == len(ran),
          'the gate ran %d times for %d runs' % (len(gate_calls), len(calls)))
    # 2 placements x (3 capacity runs + 2 servers x 2 loads) x 2 repeats = 28 runs
    check(len(calls) == 28, '%d runs, want 28' % len(calls))
    for cid, cap in (('fast', 40000), ('slow', 10000)):
        for pl, scale in (('same', 1.0), ('split', 1.5)):
            rates = sorted(r for c, _, p, r in calls if c == cid and p == pl and r)
            want = sorted([int(cap * scale * 0.5)] * 2 + [int(cap * scale * 0.9)] * 2)
            check(rates == want, '%s %s: offered %r, want %r (its own capacity)' % (
                cid, pl, rates, want))
    check(not any(c == 'broken' and r for c, _, _, r in calls),
          'a server without a capacity got an open-loop run')
    broken = [r for r in rows if r['config'] == 'broken' and r['phase'] == 'open']
    check(len(broken) == 8 and all(r['status'] == 'error' and 'no capacity' in r['error']
                                   for r in broken), 'broken: error rows for each load')
    first = [c for c, _, p, r in calls if p == 'same' and r is None]
    check(first == ['fast', 'slow', 'broken', 'broken', 'slow', 'fast'],
          'capacity order %r, want reversed on the second repeat' % first)
    check(all(r['sched'] in ('auto', 'normal', 'n/a (external)') and r['placement']
              for r in rows), 'a row without sched or placement')

    med = ol.medians(rows)
    fast50 = [m for m in med if m['config'] == 'fast' and m['load'] == '50%' and
              m['placement'] == 'split'][0]
    check(fast50['capacity'] == 60000.0 and fast50['offered_rate'] == 30000,
          'median row: capacity %r offered %r' % (fast50['capacity'],
                                                  fast50['offered_rate']))
    check(fast50['quiet'].startswith('quiet'), 'quiet column: %r' % fast50['quiet'])
    cap_slow = [m for m in med if m['config'] == 'slow' and m['phase'] == 'capacity' and
                m['placement'] == 'same'][0]
    check(cap_slow['quiet'] == 'not quiet: 12 % (1/2 runs)',
          'the second run\'s gate failed: %r' % cap_slow['quiet'])

    lines = '\n'.join(ol.report_lines(rows, [0.5, 0.9], Gate(), unit='round trip',
                                      pairs=[('fast', 'slow')]))
    check('50 % and 90 % of each server\'s own capacity' in lines, 'report title')
    check('| fast label | auto | split | 60,000 | 50% | 30,000 | 30,000 | 40.0 | 1,000 | '
          '2,000 | 6.00 | 2 | quiet' in lines, 'report row of fast, split, 50%%:\n' + lines)
    check('not quiet: 12 %' in lines, 'the not-quiet run is not in the report')
    check('| slow label | normal | same | 10,000 | 90% | 9,000 | 4,500 (short) |' in lines,
          'a load not carried is not marked (short)')
    check('| slow label | normal | same | 10,000 | 50% | 5,000 | 5,000 |' in lines,
          'a load carried is marked or missing')

    # A fixed rate: every server offered the same N/s, whatever its capacity.
    calls[:] = []
    fixed_rows = ol.run_table(targets, ['64 B x 50'], ['split'], ol.parse_loads('5000/s'),
                              1, Gate())
    offered = sorted((c, r) for c, _, _, r in calls if r)
    check(offered == [('broken', 5000), ('fast', 5000), ('slow', 5000)],
          'fixed rate offered %r' % offered)
    fixed_lines = '\n'.join(ol.report_lines(fixed_rows, ol.parse_loads('5000/s'), Gate()))
    check('at 5000/s (N/s: the same rate for every server)' in fixed_lines,
          'fixed-rate report title:\n' + fixed_lines[:300])
    check('| slow label | normal | split | 15,000 | 5000/s | 5,000 | 5,000 |' in fixed_lines,
          'fixed-rate row of slow:\n' + fixed_lines)
    check('fake gate' in lines, 'the gate is not described')
    check('| 64 B x 50 | split | 90% | fast label | slow label | 4.00 | 10.00 **worse** | '
          '10.00 **worse** | 1.50 **worse** |' in lines, 'auto-vs-normal line:\n' + lines)
    check('| broken label | n/a (external) | same | — | 50% | — | error: no capacity'
          in lines, 'the broken server\'s row')

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'latency.csv')
        ol.write_csv(path, rows)
        with open(path, newline='') as f:
            rd = csv.DictReader(f)
            got = list(rd)
            check(rd.fieldnames == ol.CSV_FIELDS, 'CSV columns %r' % rd.fieldnames)
        check(sum(1 for r in got if r['kind'] == 'run') == len(rows),
              'CSV: every run')
        check(sum(1 for r in got if r['kind'] == 'median') == len(med),
              'CSV: every median')


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    sys.path.insert(0, sys.argv[1])
    import openloop
    test_cpu_use(openloop)
    test_gate(openloop)
    test_rates(openloop)
    test_driver(openloop)
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('all passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
