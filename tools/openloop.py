"""The open-loop latency table of tools/compare (`--latency`, in the echo,
proxy and HTTP modes; standard library only). See docs/compare.md.

What it answers: at the same *relative* load, which server answers
fastest, and does ringserve's `--sched=auto` cost tail latency against
`--sched=normal`? For every server and placement it

1. measures the server's own capacity: closed-loop runs (the client sends
   the next request when the previous one returned), median requests/s of
   the repeats;
2. offers a fixed rate at fractions of THAT capacity (50 % and 90 % by
   default) with an open-loop client (ringbench --rate: latency from each
   request's intended send time, so a stalled server is charged for the
   queue it causes — no coordinated omission), and reports p50, p99 and
   p99.9.

Scaling each server to its own capacity asks "how does it behave when it
is half busy, nearly busy" rather than "how does it behave at a load one
server finds easy and another hard".

The machine must be quiet for tails to mean anything: before every run the
gate waits until the whole machine's CPU use, from /proc/stat over about
half a second, is under a threshold (5 %), for at most a bounded time; a
run that started on a busy machine says so in its row ("not quiet: X %").

Everything is interleaved: in each repeat every server runs back to back,
in an order reversed on odd repeats, so drift lands on all of them alike.
"""

import argparse
import csv
import statistics
import time

DEFAULT_LOADS = [0.5, 0.9]
LATENCY_REPEAT = 5      # repeats per cell: medians of 5 interleaved runs
QUIET_PCT = 5.0         # the machine's CPU use under which a run may start
QUIET_WAIT_S = 20.0     # how long the gate waits for it before giving up
QUIET_SAMPLE_S = 0.5    # the /proc/stat sampling interval

# A worse-than-normal ratio above this is flagged in the auto-vs-normal
# lines: repeats of one open-loop cell differ by about this much on a quiet
# machine, so smaller differences are not a finding.
TAIL_MARGIN = 1.10

# Carried below this share of the offered rate: the server (same CPU: with
# its client) did not keep up, and its latencies are queueing delay.
CARRIED_SHORT = 0.97

CSV_FIELDS = ['kind', 'cell', 'placement', 'config', 'label', 'sched', 'phase', 'load',
              'rep', 'order', 'status', 'n_ok', 'capacity', 'offered_rate', 'rtt_per_s',
              'p50_us', 'p99_us', 'p999_us', 'server_us_per_rt', 'quiet_pct', 'quiet_ok',
              'quiet_wait_s', 'error']
METRICS = ['offered_rate', 'rtt_per_s', 'p50_us', 'p99_us', 'p999_us',
           'server_us_per_rt']


# ------------------------------------------------------------ the quiet gate

def parse_cpu_times(text):
    """(busy, total) jiffies of all CPUs from /proc/stat's "cpu " line. Idle
    time is idle + iowait; guest time is already inside user (so it is not
    added twice)."""
    for line in text.splitlines():
        if line.startswith('cpu '):
            v = [int(x) for x in line.split()[1:]]
            v += [0] * (8 - len(v))
            total = sum(v[:8])      # user nice system idle iowait irq softirq steal
            idle = v[3] + v[4]
            return total - idle, total
    raise ValueError('no "cpu " line in /proc/stat')


def read_cpu_times(path='/proc/stat'):
    with open(path) as f:
        return parse_cpu_times(f.read())


def cpu_busy_pct(sample_s=QUIET_SAMPLE_S, read=read_cpu_times, sleep=time.sleep):
    """The machine's CPU use in percent (all CPUs) over sample_s seconds."""
    b0, t0 = read()
    sleep(sample_s)
    b1, t1 = read()
    if t1 <= t0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * (b1 - b0) / (t1 - t0)))


class QuietGate:
    """wait() returns once the machine's CPU use is under `threshold` %
    (sampled by `measure`), or after `max_wait` seconds; it reports what it
    saw. threshold None: no gate (a sample is still taken and reported)."""

    def __init__(self, threshold=QUIET_PCT, max_wait=QUIET_WAIT_S,
                 sample_s=QUIET_SAMPLE_S, measure=cpu_busy_pct, clock=time.monotonic):
        self.threshold = threshold
        self.max_wait = max_wait
        self.sample_s = sample_s
        self.measure = measure
        self.clock = clock

    def wait(self):
        start = self.clock()
        while True:
            pct = self.measure(self.sample_s)
            waited = self.clock() - start
            if self.threshold is None:
                return {'quiet_pct': pct, 'quiet_ok': None, 'quiet_wait_s': waited}
            if pct < self.threshold:
                return {'quiet_pct': pct, 'quiet_ok': True, 'quiet_wait_s': waited}
            # Another sample would end after the limit: give up, and say so.
            if waited + self.sample_s > self.max_wait:
                return {'quiet_pct': pct, 'quiet_ok': False, 'quiet_wait_s': waited}

    def describe(self):
        if self.threshold is None:
            return ('no quiet gate (--quiet=off): the machine\'s CPU use before each '
                    'run is recorded, not waited for')
        return ('before every run, wait until the machine\'s CPU use (all CPUs, '
                '/proc/stat over %.1f s) is under **%g %%**, for at most %g s; a run '
                'that had to start anyway is marked "not quiet: X %%" (X: the CPU use '
                'just before it)' % (self.sample_s, self.threshold, self.max_wait))


def quiet_summary(rows):
    """One cell's text from its runs' gate results."""
    pcts = [r['quiet_pct'] for r in rows if r.get('quiet_pct') is not None]
    if not pcts:
        return '—'
    bad = [r for r in rows if r.get('quiet_ok') is False]
    if bad:
        return 'not quiet: %.0f %% (%d/%d runs)' % (
            max(r['quiet_pct'] for r in bad), len(bad), len(rows))
    if any(r.get('quiet_ok') is None for r in rows):
        return 'ungated, ≤ %.0f %%' % max(pcts)
    return 'quiet (≤ %.1f %%)' % max(pcts)


# ------------------------------------------------------------ rates

class FixedRate(int):
    """A load given as an absolute rate ("20000/s"): every server is offered
    the same requests/s, whatever its own capacity — the fair way to set
    the CPU per request of two servers side by side, since a server offered
    less per second batches less per wake-up."""


def parse_loads(text):
    """'0.5,0.9' -> [0.5, 0.9]; '20000/s' -> FixedRate(20000); ValueError
    on a fraction outside (0, 1] or a rate under 1/s."""
    out = []
    for part in text.split(','):
        part = part.strip()
        if not part:
            continue
        if part.endswith('/s'):
            r = float(part[:-2].replace('_', ''))
            if r < 1 or r != int(r):
                raise ValueError('%r is not a whole rate of at least 1/s' % part)
            out.append(FixedRate(int(r)))
            continue
        f = float(part)
        if not 0 < f <= 1:
            raise ValueError('%r is not a fraction in (0, 1] or a rate N/s' % part)
        out.append(f)
    if not out:
        raise ValueError('no fraction given')
    return out


def load_name(load):
    if isinstance(load, FixedRate):
        return '%d/s' % load
    return '%g%%' % round(load * 100, 1)


def rate_for(capacity, load):
    """The offered rate (requests/s, an integer >= 1) at `load`: a fraction
    of `capacity` (None without a capacity), or a FixedRate as it is."""
    if isinstance(load, FixedRate):
        return int(load)
    if not capacity or capacity <= 0:
        return None
    return max(1, int(capacity * load))


def capacity_of(rows):
    """A server's capacity: the median requests/s of its successful
    closed-loop runs; None when none succeeded."""
    vals = [r['rtt_per_s'] for r in rows
            if r.get('status') == 'ok' and r.get('rtt_per_s')]
    return statistics.median(vals) if vals else None


def interleaved(items, rep):
    """Every item once per repeat, the order reversed on odd repeats."""
    return list(items) if rep % 2 == 0 else list(reversed(items))


# ------------------------------------------------------------ the driver

class Target:
    """A server of the table: id and label, the --sched it runs with, and
    run(cell, placement, rate) -> a record with status, error, rtt_per_s,
    p50_us, p99_us, p999_us, server_us_per_rt (rate None: closed loop)."""

    def __init__(self, cid, label, sched, run):
        self.id, self.label, self.sched, self.run = cid, label, sched, run


def run_table(targets, cells, placements, loads, repeat, gate, note=None, on_run=None,
              rows=None):
    """Capacity, then the open-loop runs, for every cell and placement.
    Appends every run's row (CSV_FIELDS) to `rows` and returns it; after a
    KeyboardInterrupt `rows` holds the runs so far. on_run(rows) is called
    after every run (to write the CSV as it goes)."""
    rows = [] if rows is None else rows
    total = len(cells) * len(placements) * repeat * len(targets) * (1 + len(loads))
    t0 = time.monotonic()

    def one(t, cell, pl, phase, load, rate, rep, order, cap):
        q = gate.wait()
        rec = t.run(cell, pl, rate)
        row = {k: rec.get(k) for k in ('status', 'error', 'rtt_per_s', 'p50_us',
                                       'p99_us', 'p999_us', 'server_us_per_rt')}
        row.update(q)
        row.update(kind='run', cell=cell, placement=pl, config=t.id, label=t.label,
                   sched=t.sched, phase=phase, load=load, rep=rep + 1, order=order + 1,
                   capacity=cap, offered_rate=rate,
                   n_ok=1 if row['status'] == 'ok' else 0)
        row['error'] = row['error'] or ''
        rows.append(row)
        if note:
            el = time.monotonic() - t0
            note('[latency %d/%d %.0f s] %s, %s, %s, %s%s: %s%s' % (
                len(rows), total, el, t.label, cell, pl, load,
                ' (%d/s)' % rate if rate else '',
                'ERROR ' + row['error'] if row['status'] != 'ok' else
                '%.0f rt/s, p50 %s p99 %s p99.9 %s us' % (
                    row['rtt_per_s'] or 0, fmt_us(row['p50_us']), fmt_us(row['p99_us']),
                    fmt_us(row['p999_us'])),
                '' if q['quiet_ok'] is not False else
                ' [not quiet: %.0f %%]' % q['quiet_pct']))
        if on_run:
            on_run(rows)

    for cell in cells:
        for pl in placements:
            for rep in range(repeat):
                for i, t in enumerate(interleaved(targets, rep)):
                    one(t, cell, pl, 'capacity', 'closed', None, rep, i, None)
            caps = {t.id: capacity_of([r for r in rows if r['cell'] == cell and
                                       r['placement'] == pl and r['config'] == t.id and
                                       r['phase'] == 'capacity']) for t in targets}
            for rep in range(repeat):
                for f in loads:
                    for i, t in enumerate(interleaved(targets, rep)):
                        rate = rate_for(caps[t.id], f)
                        if rate is None:
                            rows.append({'kind': 'run', 'cell': cell, 'placement': pl,
                                         'config': t.id, 'label': t.label,
                                         'sched': t.sched, 'phase': 'open',
                                         'load': load_name(f), 'rep': rep + 1,
                                         'order': i + 1, 'status': 'error', 'n_ok': 0,
                                         'error': 'no capacity: every closed-loop run '
                                         'failed'})
                            continue
                        one(t, cell, pl, 'open', load_name(f), rate, rep, i, caps[t.id])
    return rows


def medians(rows):
    """One median row per (cell, placement, config, load), in run order."""
    groups = {}
    for r in rows:
        if r.get('kind') != 'run':
            continue
        groups.setdefault((r['cell'], r['placement'], r['config'], r['load']), []).append(r)
    out = []
    for (cell, pl, cid, load), rs in groups.items():
        ok = [r for r in rs if r['status'] == 'ok']
        m = {'kind': 'median', 'cell': cell, 'placement': pl, 'config': cid,
             'label': rs[0]['label'], 'sched': rs[0]['sched'], 'phase': rs[0]['phase'],
             'load': load, 'n_ok': len(ok),
             'status': 'ok' if len(ok) == len(rs) else ('partial' if ok else 'error'),
             'capacity': next((r.get('capacity') for r in rs if r.get('capacity')), None),
             'quiet': quiet_summary(rs),
             'error': '; '.join(sorted({r['error'] for r in rs if r.get('error')}))[:300]}
        for k in METRICS:
            vals = [r[k] for r in ok if r.get(k) is not None]
            m[k] = statistics.median(vals) if vals else None
        qs = [r['quiet_pct'] for r in rs if r.get('quiet_pct') is not None]
        m['quiet_pct'] = max(qs) if qs else None
        m['quiet_ok'] = all(r.get('quiet_ok') for r in rs) if qs else None
        out.append(m)
    return out


def write_csv(path, rows):
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction='ignore')
        w.writeheader()
        for r in rows + medians(rows):
            w.writerow({k: ('' if r.get(k) is None else
                            ('%.12g' % r[k] if isinstance(r[k], float) else r[k]))
                        for k in CSV_FIELDS})


# ------------------------------------------------------------ the report

def fmt_us(v):
    if v is None:
        return '—'
    return '%.1f' % v if v < 1000 else '{:,.0f}'.format(v)


def fmt_rate(v):
    return '—' if v is None else '{:,.0f}'.format(v)


def report_lines(rows, loads, gate, unit='request', client='ringbench --rate',
                 pairs=(), placement_text=None):
    """The report section: the table per cell, then the auto-vs-normal
    lines for each (auto id, normal id) in `pairs`."""
    med = medians(rows)
    fixed = [f for f in loads if isinstance(f, FixedRate)]
    L = ['## Open-loop latency at 50 % and 90 % of each server\'s own capacity'
         if [load_name(f) for f in loads] == ['50%', '90%'] else
         '## Open-loop latency at %s of each server\'s own capacity' %
         ', '.join(load_name(f) for f in loads) if not fixed else
         '## Open-loop latency at %s (N/s: the same rate for every server)' %
         ', '.join(load_name(f) for f in loads), '']
    L.append('For each server and placement: its **capacity** is the median %ss/s of '
             'the closed-loop runs (the client waits for each answer); then `%s` offers '
             '%s of *that server\'s own* capacity, and the latency of each %s is '
             'measured from its **intended** send time (no coordinated omission: a '
             'stall is charged for the queue behind it). p50 / p99 / p99.9 in µs, '
             'medians of the repeats; "carried" is what the server answered; server '
             'µs/%s is its CPU per %s at that load.' % (
                 unit, client, ' and '.join(load_name(f) for f in loads), unit, unit,
                 unit))
    if fixed:
        L[-1] = L[-1].replace(' of *that server\'s own* capacity', ' (a fraction: of '
                              '*that server\'s own* capacity; N/s: that rate for every '
                              'server)')
    L.append('')
    L.append('Quiet gate: ' + gate.describe() + '.')
    if placement_text:
        L.append('')
        L.append('Placements: ' + placement_text + '.')
    L.append('')
    cells = list(dict.fromkeys(m['cell'] for m in med))
    for cell in cells:
        L.append('| %s: server | sched | placement | capacity /s | load | offered /s | '
                 'carried /s | p50 | p99 | p99.9 | server µs/%s | runs | machine before '
                 'the runs |' % (cell, unit))
        L.append('|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|')
        for m in med:
            if m['cell'] != cell:
                continue
            if m['phase'] == 'capacity':
                cap = m['rtt_per_s']
                load, offered = 'closed', '—'
            else:
                cap, load, offered = m['capacity'], m['load'], fmt_rate(m['offered_rate'])
            if m['status'] == 'error':
                L.append('| %s | %s | %s | %s | %s | %s | error: %s | | | | | 0 | %s |' % (
                    m['label'], m['sched'], m['placement'], fmt_rate(cap), load, offered,
                    m['error'][:120].replace('|', '/'), m['quiet']))
                continue
            carried = fmt_rate(m['rtt_per_s'])
            if (m['phase'] == 'open' and m['rtt_per_s'] and m['offered_rate'] and
                    m['rtt_per_s'] < CARRIED_SHORT * m['offered_rate']):
                carried += ' (short)'
            L.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d%s | %s |'
                     % (m['label'], m['sched'], m['placement'], fmt_rate(cap), load,
                        offered, carried, fmt_us(m['p50_us']),
                        fmt_us(m['p99_us']), fmt_us(m['p999_us']),
                        '—' if m['server_us_per_rt'] is None else
                        '%.2f' % m['server_us_per_rt'], m['n_ok'],
                        '' if m['status'] == 'ok' else ' *', m['quiet']))
        L.append('')
    L.append('`closed` rows are the capacity runs (their latencies are closed-loop '
             'ones, not comparable with the open-loop rows); `(short)`: carried under '
             '%d %% of the offered rate — the server (same CPU: with its client) did not '
             'keep up, its latencies are queueing delay; `*`: some repeats failed '
             '(median of the rest).' % round(CARRIED_SHORT * 100))
    L.append('')
    pl = pair_lines(med, pairs)
    if pl:
        L.append('### `--sched=auto` against `--sched=normal`')
        L.append('')
        L.append('auto ÷ normal, same server otherwise, same placement and relative '
                 'load (medians): capacity (above 1: auto carries more), then p99, '
                 'p99.9 and server CPU per %s at that load. Above %.2f (**worse**) '
                 'auto costs tail latency (or CPU) there; a ratio closer to 1 is '
                 'within the repeats\' noise. Each side runs at its *own* capacity\'s '
                 'fraction: read a latency ratio together with the capacity ratio.'
                 % (unit, TAIL_MARGIN))
        L.append('')
        L.append('| cell | placement | load | auto | normal | capacity | p99 | p99.9 | '
                 'CPU/%s |' % unit)
        L.append('|---|---|---|---|---|---:|---:|---:|---:|')
        L += pl
        L.append('')
    return L


def ratio_text(a, b):
    if a is None or not b:
        return '—'
    r = a / b
    return '%.2f%s' % (r, ' **worse**' if r > TAIL_MARGIN else '')


def pair_lines(med, pairs):
    by = {(m['cell'], m['placement'], m['config'], m['load']): m for m in med}
    out = []
    for auto, normal in pairs:
        for (cell, pl, cid, load), a in by.items():
            if cid != auto or a['phase'] != 'open':
                continue
            n = by.get((cell, pl, normal, load))
            if not n:
                continue
            out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                cell, pl, load, a['label'], n['label'],
                '—' if not (a.get('capacity') and n.get('capacity')) else
                '%.2f' % (a['capacity'] / n['capacity']),
                ratio_text(a['p99_us'], n['p99_us']),
                ratio_text(a['p999_us'], n['p999_us']),
                ratio_text(a['server_us_per_rt'], n['server_us_per_rt'])))
    return out


def _seconds(text):
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.01 <= v <= 3600:
        raise argparse.ArgumentTypeError('want seconds from 0.01 to 3600, not %r' % text)
    return v


def add_arguments(ap, default_repeat=5):
    """The options every mode's --latency shares, and --stall-timeout."""
    ap.add_argument('--stall-timeout', type=_seconds, default=1.0, metavar='S',
                    help='ringbench --stall-timeout: a connection waiting on the server '
                    'that gets nothing for S seconds fails its run (default 1); raise '
                    'it on a busy machine, where a server may not run for that long')
    ap.add_argument('--latency', action='store_true',
                    help='the open-loop latency table instead of the usual matrix: each '
                    'server\'s capacity (closed loop), then p50/p99/p99.9 at fractions of '
                    'it (--loads), both placements, behind a quiet-machine gate')
    ap.add_argument('--loads', default=None, metavar='LOADS',
                    help='--latency: fractions of each server\'s own capacity, '
                    'and/or fixed rates N/s offered to every server alike '
                    '(default 0.5,0.9; e.g. 0.5,20000/s)')
    ap.add_argument('--placements', default='same,split',
                    help='--latency: same, split or both (default same,split)')
    ap.add_argument('--quiet', default=str(QUIET_PCT), metavar='PCT',
                    help='--latency: start a run only when the machine\'s CPU use is '
                    'under PCT %%%% (default %g); "off": record it, do not wait' % QUIET_PCT)
    ap.add_argument('--quiet-wait', type=float, default=None, metavar='S',
                    help='--latency: wait at most S seconds for the machine to be quiet '
                    'before each run, then run and mark the row (default %g; --smoke 0)'
                    % QUIET_WAIT_S)


def client_args(opts):
    """ringbench arguments every mode passes, and the seconds they may add to
    a run (an empty window runs on up to the stall timeout)."""
    return ['--stall-timeout=%g' % opts.stall_timeout], opts.stall_timeout


def gate_from(opts, smoke=False):
    """The QuietGate the options ask for; ValueError on a bad --quiet."""
    wait = opts.quiet_wait if opts.quiet_wait is not None else (0.0 if smoke else
                                                                 QUIET_WAIT_S)
    if wait < 0:
        raise ValueError('--quiet-wait must be >= 0')
    if opts.quiet == 'off':
        return QuietGate(threshold=None, max_wait=wait)
    pct = float(opts.quiet)
    if not 0 < pct <= 100:
        raise ValueError('--quiet: a percentage in (0, 100], or off')
    return QuietGate(threshold=pct, max_wait=wait)


def placements_from(text):
    out = [p.strip() for p in text.split(',') if p.strip()]
    if not out or any(p not in ('same', 'split') for p in out):
        raise ValueError('--placements: same, split or same,split')
    return list(dict.fromkeys(out))
