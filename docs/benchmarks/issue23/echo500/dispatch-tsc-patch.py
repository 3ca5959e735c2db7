#!/usr/bin/env python3
"""Patch a COPY of a ringserve tree (never the working tree) so that its
io_uring loop measures its own dispatch: rdtsc around ur_run's CQE loop,
per turn, and at exit (SIGINT: a normal exit) prints, on stderr,
  TSC turns T cqes/turn C cyc/cqe med M mean X dropped D
over the last 80 % of the turns: the mean cycles per CQE with turns over
5x the median per-CQE figure dropped (preempted). Used for BENCHMARKS.md
"Split placement at 500 connections" with pair.sh.
usage: dispatch-tsc-patch.py TREE; then meson setup TREE/B --buildtype=release -Dtests=false"""
import sys
p = sys.argv[1] + '/backend_uring/uring.c'
s = open(p).read()
old = '''    for (unsigned i = 0; i < n; i++)
        on_cqe(loop, st, &cq->cqes[(head + i) & cq->ring_mask]);'''
new = '''    unsigned long long t0_ = __builtin_ia32_rdtsc();
    for (unsigned i = 0; i < n; i++)
        on_cqe(loop, st, &cq->cqes[(head + i) & cq->ring_mask]);
    if (n && tsc_nt_ < (1u << 22)) {
        tsc_dt_[tsc_nt_] = (float)(__builtin_ia32_rdtsc() - t0_) / n;
        tsc_n_[tsc_nt_++] = n;
    }'''
assert old in s, 'the CQE loop is not where it was'
s = s.replace(old, new)
s = s.replace('static int ur_run(struct rs_loop *loop, int timeout_ms)\n{', '''static float tsc_dt_[1u << 22];
static unsigned tsc_n_[1u << 22], tsc_nt_;
static int tsc_cmp_(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}
__attribute__((destructor)) static void tsc_report_(void)
{
    unsigned from = tsc_nt_ / 5, m = tsc_nt_ - from;
    unsigned long long cq = 0, n2 = 0, drop = 0;
    double cyc = 0;
    for (unsigned i = from; i < tsc_nt_; i++)
        cq += tsc_n_[i];
    float *v = malloc(sizeof(float) * (m ? m : 1));
    for (unsigned i = 0; i < m; i++)
        v[i] = tsc_dt_[from + i];
    qsort(v, m, sizeof(float), tsc_cmp_);
    float med = m ? v[m / 2] : 0;
    for (unsigned i = from; i < tsc_nt_; i++) {
        if (tsc_dt_[i] > 5 * med) {
            drop++;
            continue;
        }
        cyc += (double)tsc_dt_[i] * tsc_n_[i];
        n2 += tsc_n_[i];
    }
    fprintf(stderr, "TSC turns %u cqes/turn %.1f cyc/cqe med %.0f mean %.1f dropped %llu\\n", m,
            m ? (double)cq / m : 0.0, med, n2 ? cyc / n2 : 0.0, drop);
}
static int ur_run(struct rs_loop *loop, int timeout_ms)
{''', 1)
s = s.replace('#include <poll.h>', '#include <poll.h>\n#include <stdio.h>', 1)
open(p, 'w').write(s)
