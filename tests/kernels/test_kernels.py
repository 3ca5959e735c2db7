#!/usr/bin/env python3
"""The pieces of tools/kernels that need no VM (meson suite `kernels`).

usage: test_kernels.py TOOLS_KERNELS BUILD_DIR

- package selection: the newest unsigned cloud image of each series, 6.1
  never confused with 6.12, signed/dbg/meta packages ignored;
- the test plan: host-only suites skipped with their reason, a script whose
  interpreter is missing skipped with its name, a suite added later picked
  up, files resolved against the build directory;
- the initramfs: contents listing (binaries at their host paths plus the
  libraries ldd lists), a newc archive the kernel can unpack (parsed back
  here), the runner script quoting every argument;
- results: the recorded guest output of a real 6.1 run (results-6.1.log)
  parsed, a test failure named with its log, a guest cut off mid-test
  reported as hung, a missing host program turned into a skip; the runner
  script run on the host: a failure's early assertion kept with its log,
  and a pass whose cmocka cases skipped names them (a skip when none ran);
- the report: docs/kernels.md and .json rendered from recorded records;
  merged batches keep each test's newest result with the run (date,
  commit) that gave it, the page counts only the results at the newest
  run's commit, and a build record older than the report's never brings
  back a result a newer run replaced.

Standard library only; about a second.
"""
import gzip
import importlib.machinery
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print('FAIL: ' + msg)
    return cond


def load_tool(path):
    loader = importlib.machinery.SourceFileLoader('kernels_tool', path)
    spec = importlib.util.spec_from_loader('kernels_tool', loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_select_package(k):
    names = [
        'linux-image-6.1.0-9-cloud-amd64-unsigned',
        'linux-image-6.1.0-57-cloud-amd64-unsigned',
        'linux-image-6.1.0-57-cloud-amd64',          # signed: not this one
        'linux-image-6.1.0-58-cloud-amd64-dbg',
        'linux-image-6.1.0-56-amd64-unsigned',        # other flavour
        'linux-image-6.12.9+deb12-cloud-amd64-unsigned',
        'linux-image-6.12.117+deb12-cloud-amd64-unsigned',
        'linux-image-6.12.113+deb12-cloud-amd64-unsigned',
        'linux-image-6.12-cloud-amd64',               # meta package
        'linux-image-cloud-amd64',
    ]
    check(k.select_package('6.1', names) == 'linux-image-6.1.0-57-cloud-amd64-unsigned',
          '6.1: newest ABI, unsigned, cloud')
    check(k.select_package('6.12', names) ==
          'linux-image-6.12.117+deb12-cloud-amd64-unsigned',
          '6.12: newest sublevel (117 > 113 > 9, numerically)')
    check(k.select_package('6.6', names) is None, 'absent series gives None')
    check(k.select_package('6.12', ['linux-image-6.12-cloud-amd64-unsigned']) is None,
          'a name without a sublevel is a meta package')
    # 5.10 (bullseye: ABI names), 7.x (trixie-backports, sid: signed only)
    more = names + [
        'linux-image-5.10.0-32-cloud-amd64-unsigned',
        'linux-image-5.10.0-46-cloud-amd64',
        'linux-image-5.10.0-46-cloud-amd64-unsigned',
        'linux-image-6.1.0-0.deb11.52-cloud-amd64-unsigned',  # bullseye's backport
        'linux-image-7.3.4+deb13-cloud-amd64',
        'linux-image-7.3.4+deb13-cloud-amd64-dbg',
        'linux-image-7.3.4+deb13-rt-amd64',
        'linux-image-7.2.13+deb14-cloud-amd64',
        'linux-image-7.2.9+deb13-cloud-amd64',
    ]
    check(k.select_packages('5.10', more) ==
          ['linux-image-5.10.0-46-cloud-amd64-unsigned', 'linux-image-5.10.0-46-cloud-amd64',
           'linux-image-5.10.0-32-cloud-amd64-unsigned'],
          '5.10: newest first, unsigned before signed of one version: %r'
          % k.select_packages('5.10', more))
    check(k.select_package('6.1', more) == 'linux-image-6.1.0-57-cloud-amd64-unsigned',
          '6.1: bullseye\'s 6.1.0-0.deb11.N backport names are not picked')
    check(k.select_package('7.3', more) == 'linux-image-7.3.4+deb13-cloud-amd64',
          '7.3: the signed image when there is no unsigned one')
    check(k.select_package('7.2', more) == 'linux-image-7.2.13+deb14-cloud-amd64',
          '7.2: sid\'s 13 over backports\' 9')


def test_image_layout(k, tmp):
    """Debian 7.x splits the image: linux-image-X depends on linux-binary-X,
    whose kernel is /usr/lib/modules/X/vmlinuz (not /boot/vmlinuz-X)."""
    deps = ('dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, '
            'linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), '
            'linux-binary-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), '
            'linux-modules-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)')
    check(k.image_parts(deps) == ['linux-binary-7.3.4+deb13-cloud-amd64'],
          'the binary package from Depends: %r' % k.image_parts(deps))
    check(k.image_parts('linux-base (>= 4.17~), initramfs-tools') == [],
          'a 6.x image depends on no binary package')
    root = os.path.join(tmp, 'img')
    check(k.find_vmlinuz(root) is None, 'nothing unpacked: no image')
    os.makedirs(os.path.join(root, 'usr/lib/modules/7.3.4+deb13-cloud-amd64'))
    open(os.path.join(root, 'usr/lib/modules/7.3.4+deb13-cloud-amd64/vmlinuz'), 'w').close()
    check(k.find_vmlinuz(root) == (os.path.join(root, 'usr/lib/modules/7.3.4+deb13-'
                                                'cloud-amd64/vmlinuz'),
                                   '7.3.4+deb13-cloud-amd64'), '7.x layout')
    os.makedirs(os.path.join(root, 'boot'))
    open(os.path.join(root, 'boot/vmlinuz-5.10.0-46-cloud-amd64'), 'w').close()
    check(k.find_vmlinuz(root)[1] == '5.10.0-46-cloud-amd64', '/boot layout')


def test_private_apt(k, tmp):
    """The apt configuration is the tool's own: every directory apt reads or
    writes is under the cache, and the sources reach every suite."""
    cache = os.path.join(tmp, 'cache')
    opts = k.apt_options(cache)
    pairs = dict(o.split('=', 1) for o in opts[1::2])
    for key in ('Dir::Etc::SourceList', 'Dir::Etc::SourceParts', 'Dir::Etc::Preferences',
                'Dir::Etc::PreferencesParts', 'Dir::State', 'Dir::State::Lists',
                'Dir::State::status', 'Dir::Cache'):
        check(pairs.get(key, '').startswith(cache + os.sep),
              'apt option %s is private: %r' % (key, pairs.get(key)))
    check(all(o == '-o' for o in opts[0::2]), 'apt options are -o pairs')
    src = k.apt_sources()
    for suite in ('bullseye', 'bullseye-security', 'bookworm', 'trixie',
                  'trixie-backports', 'sid'):
        check((' %s main\n' % suite) in src, 'sources list has %s' % suite)


def fake_tests(build, tmp):
    """A meson introspection as the build would give, with a suite added
    later ('proxy'), a Python test, a shell script needing curl, and the
    host-only suites."""
    script_sh = os.path.join(tmp, 'smoke.sh')
    open(script_sh, 'w').write('#!/bin/sh\n# curl is only named in a comment\n'
                               'echo "$1"\n')
    script_curl = os.path.join(tmp, 'http.sh')
    open(script_curl, 'w').write('#!/bin/sh\nexec curl -s "http://127.0.0.1:$1/"\n')
    script_py = os.path.join(tmp, 'check.py')
    open(script_py, 'w').write('#!/usr/bin/env python3\nprint(1)\n')
    rs = os.path.join(build, 'ringserve')
    sh = '/bin/sh'
    return [
        {'name': 'e2e-uring', 'suite': ['ringserve:e2e'], 'cmd': [rs, '--backend=uring'],
         'env': {}, 'workdir': None, 'timeout': 120},
        {'name': 'proxy-epoll', 'suite': ['ringserve:proxy'],
         'cmd': [script_sh, './ringserve'], 'env': {'RS_X': rs}, 'workdir': None,
         'timeout': 60},
        {'name': 'http-curl', 'suite': ['ringserve:http'], 'cmd': [script_curl, '1'],
         'env': {}, 'workdir': None, 'timeout': 30},
        {'name': 'probe-json', 'suite': ['ringserve:probe'], 'cmd': [script_py],
         'env': {}, 'workdir': None, 'timeout': 30},
        {'name': 'e2e-epoll-valgrind', 'suite': ['ringserve:e2e', 'ringserve:valgrind'],
         'cmd': [rs], 'env': {}, 'workdir': None, 'timeout': 300},
        {'name': 'fuzz-replay', 'suite': ['ringserve:fuzz'], 'cmd': [rs], 'env': {},
         'workdir': None, 'timeout': 30},
        {'name': 'gone', 'suite': ['ringserve:e2e'], 'cmd': ['/nonexistent/prog'],
         'env': {}, 'workdir': None, 'timeout': 30},
        {'name': 'shell', 'suite': ['ringserve:e2e'], 'cmd': [sh, '-c', 'true'],
         'env': {}, 'workdir': None, 'timeout': 30},
    ]


def test_plan(k, build, tmp):
    provided = {'sh', 'timeout', 'ss'}
    plan = {e['name']: e for e in k.plan_tests(fake_tests(build, tmp), build, provided)}
    check(plan['e2e-uring']['skip'] is None, 'e2e runs')
    check(os.path.join(build, 'ringserve') in plan['e2e-uring']['files'],
          'e2e needs the ringserve binary')
    check(plan['proxy-epoll']['skip'] is None, 'a new suite is picked up')
    check(os.path.join(build, 'ringserve') in plan['proxy-epoll']['files'],
          'relative arguments and env paths resolve against the build')
    check(plan['proxy-epoll']['cwd'] == build, 'tests run in the build directory')
    check('curl' in (plan['http-curl']['skip'] or ''), 'a script running curl is skipped: '
          + str(plan['http-curl']['skip']))
    check(plan['probe-json']['skip'] == 'needs python3, not in the initramfs',
          'python script: ' + str(plan['probe-json']['skip']))
    check('valgrind' in (plan['e2e-epoll-valgrind']['skip'] or ''), 'valgrind is host only')
    check('host only' in (plan['fuzz-replay']['skip'] or ''), 'fuzz is host only')
    check('not found' in (plan['gone']['skip'] or ''), 'a missing program is a skip')
    only = {e['name']: e for e in k.plan_tests(fake_tests(build, tmp), build, provided,
                                                suites=['proxy'])}
    check(only['e2e-uring']['skip'] is not None and only['proxy-epoll']['skip'] is None,
          '--suites selects')
    # a test a batch leaves out has no result of that batch, whichever
    # option left it out: --merge keeps its earlier result
    for how, kw in (('--suites', {'suites': ['proxy']}), ('--exclude-suites', {'exclude': ['e2e']}),
                    ('--tests', {'name_glob': ['proxy*']}),
                    ('--skip-tests', {'skip_glob': ['e2e-*']})):
        left = {e['name']: e for e in k.plan_tests(fake_tests(build, tmp), build, provided,
                                                    **kw)}['e2e-uring']['skip']
        check(k.not_selected({'result': 'skip', 'reason': left}),
              'left out by %s: not selected (%s)' % (how, left))
    return list(plan.values())


def parse_cpio(data):
    """{name: (mode, data, rdevmajor, rdevminor)} from a newc archive."""
    out, pos = {}, 0
    while True:
        hdr = data[pos:pos + 110]
        assert hdr[:6] == b'070701', 'bad magic at %d' % pos
        f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, nsize = f[1], f[6], f[9], f[10], f[11]
        name = data[pos + 110:pos + 110 + nsize - 1].decode()
        pos += 110 + nsize
        pos += (4 - pos % 4) % 4
        body = data[pos:pos + size]
        pos += size
        pos += (4 - pos % 4) % 4
        if name == 'TRAILER!!!':
            return out
        out[name] = (mode, body, rmaj, rmin)


def test_initramfs(k, build, plan, tmp):
    sh = os.path.realpath('/bin/sh')
    runnable = [dict(e, files=[sh]) if e['skip'] is None else e for e in plan]
    contents = k.initramfs_contents(runnable, [], busybox=sh)
    check(sh in contents, 'the test binaries are listed at their host paths')
    check(any('libc.so' in p for p in contents), 'libc from ldd is listed: %s'
          % sorted(contents))
    check(any('ld-linux' in p for p in contents), 'the dynamic loader is listed')
    out = os.path.join(tmp, 'initrd.gz')
    k.build_initramfs(runnable, '/bin/true', 4, out, busybox=sh)
    arch = parse_cpio(gzip.decompress(open(out, 'rb').read()))
    check('init' in arch and arch['init'][1].startswith(b'#!/bin/busybox sh'),
          '/init is the busybox script')
    check(arch.get('dev/console', (0,))[0] & 0o170000 == 0o020000
          and arch['dev/console'][2:] == (5, 1), '/dev/console is char 5,1')
    check(arch.get('bin/busybox', (0, b''))[1] == open(sh, 'rb').read(),
          'busybox is copied byte for byte')
    check('rs/run.sh' in arch, 'the runner is included')
    for d in ('proc', 'sys', 'tmp', 'dev'):
        check(d in arch and arch[d][0] & 0o040000, '/%s exists' % d)
    run = arch['rs/run.sh'][1].decode()
    check("run_test e2e-uring 480 " in run, 'timeouts scaled x4 (120 -> 480)')
    check('RS_X=' in run and 'env ' in run, 'environment passed with env')
    check('http-curl' not in run, 'skipped tests are not in the runner')
    for line in run.splitlines():
        if line.startswith('run_test '):
            shlex.split(line)  # every line parses as shell words


def test_python_in_guest(k, build, tmp):
    """A Python test runs in the guest: the interpreter it names (a pyenv
    shim is replaced by what it runs), `env python3`'s /usr/bin/python3, the
    standard library, the modules next to the script and one folder up,
    and PYTHONHOME set in the guest only."""
    sub = os.path.join(tmp, 'pytests', 'hostile')
    os.makedirs(sub, exist_ok=True)
    script = os.path.join(sub, 'test_x.py')
    open(script, 'w').write('#!/usr/bin/env python3\nimport helper\n')
    open(os.path.join(sub, 'helper.py'), 'w').write('X = 1\n')
    open(os.path.join(tmp, 'pytests', 'skip_reason.py'), 'w').write('Y = 2\n')
    py = sys.executable
    tests = [{'name': 'hostile-x', 'suite': ['ringserve:hostile'], 'cmd': [py, script],
              'env': {}, 'workdir': None, 'timeout': 30}]
    plan = k.plan_tests(tests, build, {'sh', 'python3'})
    e = plan[0]
    check(e['skip'] is None, 'a Python test runs when python3 is provided: %s' % e['skip'])
    for f in ('helper.py', os.path.join('..', 'skip_reason.py')):
        check(os.path.normpath(os.path.join(sub, f)) in e['files'],
              'the module %s next to the script goes in' % f)
    contents = k.initramfs_contents(plan, [], busybox=os.path.realpath('/bin/sh'))
    real = os.path.realpath(sys.executable)
    check(contents.get(py) == real, 'the interpreter at the path the test names: %s'
          % contents.get(py))
    check(contents.get('/usr/bin/python3') == real, '/usr/bin/python3 for env shebangs')
    check(any(p.endswith('/os.py') for p in contents), 'the standard library goes in')
    check(not any('/test/' in p or '/site-packages/' in p for p in contents),
          'its tests and site-packages stay out')
    run = k.runner_script(plan, '/bin/true', 1)
    check('[ -n "$RS_GUEST" ] && export PYTHONHOME=' in run,
          'PYTHONHOME is set for the guest only')
    check('RS_GUEST=1' in k.INIT, 'the guest init marks the guest')
    # an --extra command that starts python3 (the examples' runner) brings
    # the interpreter and its library in without a Python test beside it
    extra = [{'name': 'x-py', 'suite': ['extra'],
              'cmd': ['sh', '-c', 'ls kx >/dev/null && python3 %s kx uring /tmp/ex'
                      % script],
              'env': {}, 'workdir': None, 'timeout': 30}]
    xplan = k.plan_tests(extra, build, {'sh', 'python3'})
    xc = k.initramfs_contents(xplan, [], busybox=os.path.realpath('/bin/sh'))
    check(any(p.endswith('/os.py') for p in xc) and '/usr/bin/python3' in xc,
          'an --extra python3 command gets the interpreter and its library')


def test_results(k, build, plan):
    text = open(os.path.join(HERE, 'results-6.1.log')).read()
    parsed = k.parse_results(text)
    check(parsed['done'], 'the recorded run finished')
    check(parsed['init']['kernel'] == '6.1.0-57-cloud-amd64', 'kernel from init line')
    names = [t['name'] for t in parsed['tests']]
    check(names == ['probe', 'e2e-cli', 'contract-uring-default'], 'tests: %s' % names)
    rplan = [{'name': n, 'suites': ['unit'] if n.startswith('contract') else ['e2e'],
              'skip': None} for n in names]
    rplan.append({'name': 'probe-json', 'suites': ['probe'],
                  'skip': 'needs python3, not in the initramfs'})
    rec = k.assemble('6.1', {'package': 'linux-image-6.1.0-57-cloud-amd64-unsigned',
                             'version': '6.1.192-3'}, rplan, parsed,
                     {'accel': 'tcg', 'status': 'ok', 'total_secs': 40, 'boot_secs': 5,
                      'date': '2026-12-07 04:00 UTC', 'commit': 'c0ffee1'})
    by = {t['name']: t for t in rec['tests']}
    check(by['probe']['result'] == 'pass', 'probe passed')
    check(by['contract-uring-default']['result'] == 'fail', 'the failure is a failure')
    check('enobufs' in by['contract-uring-default'].get('log', ''), 'with its log')
    check(by['probe-json']['result'] == 'skip' and 'python3' in by['probe-json']['reason'],
          'planned skips keep their reason')
    check(all((t.get('date'), t.get('commit')) == ('2026-12-07 04:00 UTC', 'c0ffee1')
              for t in rec['tests']), 'each result names its run')
    check(rec['probe']['io_uring']['setup']['defer_taskrun'] is True, 'probe JSON parsed')
    check(rec['startup']['auto']['config']['backend'] == 'uring', 'auto resolves to uring')
    check(k.default_features(rec) == ['multishot-accept', 'multishot-recv', 'buf-ring',
                                      'fixed-files', 'ring-fd', 'defer-taskrun',
                                      'send-zc'], 'default features from the start-up line')
    # A guest that dies in the middle of e2e-cli: probe passed, e2e-cli hung,
    # the rest never ran.
    cut = text[:text.index('@RS test e2e-cli')]
    p2 = k.parse_results(cut)
    check(not p2['done'] and p2['started'] == 'e2e-cli', 'cut-off run: started e2e-cli')
    r2 = k.assemble('6.1', {}, rplan, p2, {'status': 'hung'})
    by2 = {t['name']: t['result'] for t in r2['tests']}
    check(by2 == {'probe': 'pass', 'e2e-cli': 'hung', 'contract-uring-default': 'not-run',
                  'probe-json': 'skip'}, 'hung/not-run: %s' % by2)
    # A test that could not find a host program is a skip, not a failure.
    p3 = k.parse_results('@RS init kernel=x\n@RS test t1 rc=127 start=1 end=2 tmo=10\n'
                         '@RS begin log-t1\nrun.sh: line 3: curl: not found\n'
                         '@RS end log-t1\n@RS done\n')
    r3 = k.assemble('x', {}, [{'name': 't1', 'suites': ['http'], 'skip': None}], p3, {})
    check(r3['tests'][0]['result'] == 'skip' and 'curl' in r3['tests'][0]['reason'],
          'missing curl at run time: %s' % r3['tests'][0])
    check(k.classify(137, 480.2, 480) == 'timeout', 'killed at its timeout')
    check(k.classify(77, 1, 30) == 'skip', 'exit 77 is a skip')
    return rec


def run_runner(k, build, tmp, tag, tests):
    """The runner script of TESTS (meson introspection entries), run here
    on the host as the guest runs it: (plan, parsed results)."""
    plan = k.plan_tests(tests, build, {'sh'})
    script = os.path.join(tmp, 'run-%s.sh' % tag)
    open(script, 'w').write(k.runner_script(plan, '/bin/true', 1))
    out = os.path.join(tmp, 'results-%s.log' % tag)
    rt = os.path.join(tmp, 'rt-' + tag)
    os.makedirs(rt, exist_ok=True)
    env = dict(os.environ, RS_OUT=out, RS_TMP=rt)
    subprocess.run(['/bin/sh', script], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    return plan, k.parse_results(open(out).read())


def test_failure_lines(k, build, tmp):
    """A failed test's log keeps what failed even when it came long before
    the last 60 lines (cmocka writes its assertion to stderr, unbuffered,
    and the rest to stdout, buffered): the runner script, run here on the
    host, sends those lines in a fail- block, and the record's log and
    summary show them; a short log gets no such block (no line twice)."""
    long_log = ('echo "[  ERROR   ] --- res == -ECANCELED || res > 0" >&2; '
                'echo "[   LINE   ] --- ../t.c:962: error: Failure!" >&2; '
                'i=0; while [ $i -lt 100 ]; do echo "[       OK ] test_$i"; i=$((i+1)); done; '
                'echo "[  FAILED  ] test_cold"; exit 1')
    short_log = 'echo "[  ERROR   ] --- early" >&2; echo "[  FAILED  ] test_x"; exit 1'
    tests = [{'name': n, 'suite': ['ringserve:unit'], 'cmd': ['/bin/sh', '-c', c],
              'env': {}, 'workdir': None, 'timeout': 30}
             for n, c in (('long', long_log), ('short', short_log))]
    plan, parsed = run_runner(k, build, tmp, 'fail', tests)
    check('fail-long' in parsed['blocks'] and 'fail-short' not in parsed['blocks'],
          'a fail- block only for a log longer than its tail: %s' % sorted(parsed['blocks']))
    rec = k.assemble('host', {}, plan, parsed, {'status': 'ok'})
    by = {t['name']: t for t in rec['tests']}
    log = by['long'].get('log', '')
    check('res == -ECANCELED' in log and 't.c:962: error' in log,
          'the early assertion is in the log: %r' % log[:300])
    check('test_99' in log, 'and the last lines too')
    check('t.c:962: error' in k.failure_summary(log),
          'the summary names it: %s' % k.failure_summary(log))
    check(by['short'].get('log', '').count('early') == 1, 'a short log keeps each line once')


def test_skipped_cases(k, build, tmp):
    """A test that passes (exit 0) while cmocka skipped some or all of its
    cases: the runner script, run here on the host, sends the skipped
    cases and their SKIP-REASON lines; a test none of whose cases passed
    is a skip with its reason (it exercised nothing on that kernel), one
    with some skipped keeps 'pass' and names the cases, in the record and
    in the report; a clean pass gets neither."""
    def cmocka(passed, skipped):
        out = ['echo "[==========] Running %d test(s)."' % (len(passed) + len(skipped))]
        for c in skipped:
            out += ['echo "[ RUN      ] %s"' % c,
                    'echo "SKIP-REASON: feature unavailable: buf-inc"',
                    'echo "[  SKIPPED ] %s" >&2' % c]
        for c in passed:
            out += ['echo "[ RUN      ] %s"' % c, 'echo "[       OK ] %s"' % c]
        out += ['echo "[  PASSED  ] %d test(s)."' % len(passed)]
        if skipped:
            out += ['echo "[  SKIPPED ] %d test(s), listed below:" >&2' % len(skipped)]
            out += ['echo "[  SKIPPED ] %s" >&2' % c for c in skipped]
        return '; '.join(out + ['exit 0'])
    cases = (('allskip', cmocka([], ['test_a', 'test_b'])),
             ('someskip', cmocka(['test_c'], ['test_a'])),
             ('clean', cmocka(['test_c'], [])))
    tests = [{'name': n, 'suite': ['ringserve:unit'], 'cmd': ['/bin/sh', '-c', c],
              'env': {}, 'workdir': None, 'timeout': 30} for n, c in cases]
    plan, parsed = run_runner(k, build, tmp, 'skips', tests)
    rec = k.assemble('host', {}, plan, parsed, {'status': 'ok'})
    by = {t['name']: t for t in rec['tests']}
    check(by['allskip']['result'] == 'skip'
          and by['allskip'].get('reason') == 'SKIP-REASON: feature unavailable: buf-inc',
          'every case skipped: a skip with its reason: %s' % by['allskip'])
    check(by['someskip']['result'] == 'pass'
          and by['someskip'].get('skipped_cases') == ['test_a']
          and 'buf-inc' in by['someskip'].get('reason', ''),
          'some cases skipped: a pass naming them: %s' % by['someskip'])
    check(by['clean']['result'] == 'pass' and 'skipped_cases' not in by['clean']
          and 'skips-clean' not in parsed['blocks'], 'a clean pass: %s' % by['clean'])
    rec['kernel'] = rec['release'] = 'host'
    md, js = os.path.join(tmp, 'skips.md'), os.path.join(tmp, 'skips.json')
    k.write_report([rec], md, js)
    text = open(md).read()
    check('passed, with these cases skipped: SKIP-REASON: feature unavailable: buf-inc'
          in text and 'someskip (test_a)' in text, 'the report names the skipped cases')
    back = k.recorded(os.path.join(tmp, 'no-results'), js, 'host')
    bby = {t['name']: t for t in back['tests']}
    check(bby['someskip'].get('skipped_cases') == ['test_a'],
          'the report JSON keeps the skipped cases')


def batch_of(rec, name, date, commit, left_out='not selected (--tests)', **result):
    """REC as a run at DATE and COMMIT of the test NAME alone (its result
    changed by RESULT), the others not selected (LEFT_OUT: the reason)."""
    tests = [dict(t, date=date, commit=commit, **result) if t['name'] == name else
             {'name': t['name'], 'suites': t['suites'], 'result': 'skip',
              'reason': left_out} for t in rec['tests']]
    return dict(json.loads(json.dumps(rec)), date=date, commit=commit, tests=tests)


def test_report(k, rec, tmp):
    rec12 = json.loads(json.dumps(rec))
    rec12['kernel'], rec12['release'] = '6.12', '6.12.117+deb12-cloud-amd64'
    rec12['probe']['io_uring']['features']['recvsend_bundle'] = True
    rec12['probe']['io_uring']['features']['min_timeout'] = True
    rec12['tests'] = [dict(t, result='pass') if t['result'] == 'fail' else t
                      for t in rec12['tests']]
    md, js = os.path.join(tmp, 'k.md'), os.path.join(tmp, 'k.json')
    k.write_report([rec, rec12], md, js)
    text = open(md).read()
    check('| 6.1.0-57-cloud-amd64 | 6.12.117+deb12-cloud-amd64 |' in text,
          'one column per kernel')
    check('| bundle | no | yes | yes | 6.10 |' in text, 'bundle: no on 6.1, yes on 6.12, '
          'opt-in, since 6.10')
    check('| defer-taskrun | yes (default) | yes (default) | no | 6.1 |' in text,
          'defer-taskrun default on both')
    check('`contract-uring-default` fail' in text, 'the failure is named')
    check('needs python3' in text, 'skip reasons listed')
    check('| unit | 0 / 1 / 0 | 1 / 0 / 0 |' in text, 'per-suite counts per kernel')
    check('not performance numbers' in text, 'TCG timings disclaimed')
    check('## What the matrix found' in text and 'close_direct' in text,
          'the findings are in the report')
    check('`io_uring.setup.defer_taskrun` | yes | yes | 6.1' in text, 'facts with since')
    # a second batch keeps the first batch's results for what it left out
    later = batch_of(rec, 'probe', '2026-12-07 05:00 UTC', 'beef002')
    merged = k.merge_records(rec, later)
    mby = {t['name']: t for t in merged['tests']}
    check({n: t['result'] for n, t in mby.items()} == {
        'probe': 'pass', 'e2e-cli': 'pass', 'contract-uring-default': 'fail',
        'probe-json': 'skip'}, 'merge keeps earlier results: %s' % mby)
    check(mby['contract-uring-default'].get('commit') == 'c0ffee1'
          and mby['probe'].get('commit') == 'beef002', 'each kept result names its run')
    check([b['date'] for b in merged['batches']] == [rec['date'], later['date']],
          'merge records the batches')
    # ... and so does a batch chosen by suite
    by_suite = k.merge_records(rec, batch_of(rec, 'probe', '2026-12-07 05:00 UTC', 'beef002',
                                             left_out='suite not selected (--suites)'))
    check({t['name']: (t['result'], t.get('commit')) for t in by_suite['tests']} == {
        'probe': ('pass', 'beef002'), 'e2e-cli': ('pass', 'c0ffee1'),
        'contract-uring-default': ('fail', 'c0ffee1'), 'probe-json': ('skip', 'c0ffee1')},
        'a --suites batch keeps earlier results: %s' % by_suite['tests'])
    # the page counts only the results at the newest run's commit: the
    # earlier failure is listed apart, not counted
    k.write_report([merged], md, js)
    text = open(md).read()
    check('| unit | 0 / 0 / 0 (1 earlier) |' in text and '| e2e | 1 / 0 / 0 (1 earlier) |'
          in text, 'counts only the results at the commit: %s' % [
              x for x in text.splitlines() if x.startswith(('| unit', '| e2e'))])
    check('### Failures\n\nNone.' in text, 'no failure at the commit')
    check('`contract-uring-default` fail at `c0ffee1` (2026-12-07 04:00 UTC)' in text,
          'the earlier failure named with its run')
    # ... and so does a batch run from a fresh clone, from the report's JSON
    from_report = k.recorded(os.path.join(tmp, 'no-results'), js, rec['kernel'])
    check(from_report is not None, 'the report JSON holds the kernel\'s record')
    third = batch_of(rec, 'contract-uring-default', '2026-12-07 06:00 UTC', 'cafe003',
                     result='pass')
    again = k.merge_records(from_report, third)
    aby = {t['name']: (t['result'], t.get('commit')) for t in again['tests']}
    check(aby == {'probe': ('pass', 'beef002'), 'e2e-cli': ('pass', 'c0ffee1'),
                  'contract-uring-default': ('pass', 'cafe003'),
                  'probe-json': ('skip', 'c0ffee1')},
          'merge from the report keeps each newest result and its run: %s' % aby)
    check([b['commit'] for b in again['batches']] == ['c0ffee1', 'beef002', 'cafe003'],
          'merge from the report continues the batches: %s' % again['batches'])
    # a build directory holding an older merged record than the report's (the
    # report was made in another checkout): the report's newer runs win, and
    # the stale failure does not come back
    results = os.path.join(tmp, 'stale-results')
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, rec['kernel'] + '.json'), 'w') as f:
        json.dump(merged, f)
    k.write_report([again], md, js)
    back = k.recorded(results, js, rec['kernel'])
    bby = {t['name']: t['result'] for t in back['tests']}
    check(bby['contract-uring-default'] == 'pass',
          'an older build record does not replace the report\'s newer one: %s' % bby)
    # --merge over a build record and the report that diverged (each has
    # runs the other lacks): each test's newest result of either
    diverged = k.merge_records(merged, batch_of(rec, 'e2e-cli', '2026-12-07 07:00 UTC',
                                                'd00d004'))
    with open(os.path.join(results, rec['kernel'] + '.json'), 'w') as f:
        json.dump(diverged, f)
    both = k.recorded_merged(results, js, rec['kernel'])
    bby = {t['name']: (t['result'], t.get('commit')) for t in both['tests']}
    check(bby == {'probe': ('pass', 'beef002'), 'e2e-cli': ('pass', 'd00d004'),
                  'contract-uring-default': ('pass', 'cafe003'),
                  'probe-json': ('skip', 'c0ffee1')},
          'merge over diverged records: each newest result: %s' % bby)
    # a report entry from before results named their run: where its run is
    # unknown the newer record's result stands (its runs include the older
    # record's), so an older build record's failure does not come back
    entry = json.load(open(js))['kernels'][0]
    entry['tests'] = [{k_: v for k_, v in t.items() if k_ not in ('date', 'commit')}
                      for t in entry['tests']]
    with open(js, 'w') as f:
        json.dump({'kernels': [entry]}, f)
    with open(os.path.join(results, rec['kernel'] + '.json'), 'w') as f:
        json.dump(merged, f)
    unknown = k.recorded_merged(results, js, rec['kernel'])
    uby = {t['name']: (t['result'], t.get('commit')) for t in unknown['tests']}
    check(uby['contract-uring-default'] == ('pass', None),
          'an unknown run of the newer record stands: %s' % uby)
    # a merged raw record from before results named their run: its kept
    # results are numbered by batch; its own run's results are not
    legacy = dict(merged, batches=merged['batches'], tests=[
        dict({k_: v for k_, v in t.items() if k_ not in ('date', 'commit')},
             **({'batch': 1} if t.get('commit') == 'c0ffee1' else {}))
        for t in merged['tests']])
    lby = {t['name']: k.result_run(legacy, t)[1] for t in legacy['tests']}
    check(lby == {'probe': 'beef002', 'e2e-cli': 'c0ffee1',
                  'contract-uring-default': 'c0ffee1', 'probe-json': 'c0ffee1'},
          'a legacy batch number names its run: %s' % lby)
    # --report-only from a fresh clone: the same page from the report's JSON
    # (the probe and the start-up lines are in it) as from the raw records
    k.write_report([rec, rec12], md, js)
    page = open(md).read()
    back = [k.recorded(os.path.join(tmp, 'no-results'), js, x) for x in ('6.1', '6.12')]
    k.write_report(back, md + '2', js + '2')
    diff = [(a, b) for a, b in zip(page.splitlines(), open(md + '2').read().splitlines())
            if a != b]
    check(not diff, 'the report from its JSON is the same page: %r' % diff[:2])
    # a run of one kernel keeps the other kernels' recorded columns
    only12 = k.with_recorded([json.loads(json.dumps(rec12))],
                             os.path.join(tmp, 'no-results'), js,
                             committed=os.path.join(tmp, 'no-committed.json'))
    check([r['kernel'] for r in only12] == ['6.1', '6.12'],
          'one kernel run, the page keeps the others: %r' % [r['kernel'] for r in only12])
    check(k.kernel_order('5.10') < k.kernel_order('6.1') < k.kernel_order('6.12')
          < k.kernel_order('7.3') < k.kernel_order('host'), 'kernels in version order')
    # an entry of an older report: the facts and the auto start-up only
    old = json.load(open(js))['kernels'][0]
    for key in ('probe', 'startup', 'probe_text'):
        old.pop(key)
    rebuilt = k.record_from_report(old)
    check(k.feature_supported(rebuilt['probe'], k.FEATURES[0]) ==
          k.feature_supported(rec['probe'], k.FEATURES[0]), 'probe rebuilt from the facts')
    check(k.default_features(rebuilt) == k.default_features(rec),
          'defaults rebuilt from the auto start-up')
    k.write_report([rec12], md, js, earlier=[rec])
    text2 = open(md).read()
    check('## An earlier run' in text2 and '`contract-uring-default` fail' in text2,
          'an earlier run is shown with its failures')
    k.write_report([rec, rec12], md, js)
    d = json.load(open(js))
    check([x['kernel'] for x in d['kernels']] == ['6.1', '6.12'], 'JSON kernels')
    check(d['kernels'][0]['features']['bundle'] is False
          and d['kernels'][1]['features']['bundle'] is True, 'JSON features per kernel')
    check(d['kernels'][0]['suites']['unit']['failed'] == ['contract-uring-default (fail)'],
          'JSON names failures')
    check(all(f['source'] for f in d['features']), 'every feature has a source')


def test_build_hidden_in_guest(k, tool, tmp):
    """A build tree the guest's own mounts would hide (its init mounts a
    tmpfs on /tmp) is refused with a clear error, before any guest boots:
    it once made every test of a column fail with "can't cd"."""
    check(k.guest_hidden('/tmp/x/build') == '/tmp', '/tmp/x/build is hidden')
    check(k.guest_hidden('/tmpfoo/build') is None, '/tmpfoo is not /tmp')
    check(k.guest_hidden('/work/x/build') is None, '/work/x/build is not hidden')
    build = os.path.join(tmp, 'hidden-build')
    os.makedirs(build, exist_ok=True)
    open(os.path.join(build, 'ringserve'), 'w').close()
    p = subprocess.run([sys.executable, tool, '--build=' + build, '--kernels=6.12'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    if k.guest_hidden(build):
        check(p.returncode != 0 and 'empty tmpfs' in p.stderr,
              'a build under %s refused: rc %d, %r' % (k.guest_hidden(build),
                                                      p.returncode, p.stderr[-300:]))


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    k = load_tool(sys.argv[1])
    build = os.path.abspath(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        test_select_package(k)
        test_private_apt(k, tmp)
        test_image_layout(k, tmp)
        plan = test_plan(k, build, tmp)
        test_initramfs(k, build, plan, tmp)
        test_python_in_guest(k, build, tmp)
        rec = test_results(k, build, plan)
        test_failure_lines(k, build, tmp)
        test_skipped_cases(k, build, tmp)
        test_report(k, rec, tmp)
        test_build_hidden_in_guest(k, sys.argv[1], tmp)
    print('%d failed' % len(failures) if failures else 'all passed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
