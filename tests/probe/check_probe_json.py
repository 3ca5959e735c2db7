#!/usr/bin/env python3
"""Run `ringserve --probe --json` and `ringserve --probe`; check the report.

Usage: check_probe_json.py PATH/TO/ringserve

The JSON must parse, carry exactly the keys documented in docs/probe.md with
the documented types, agree with what this process can see (kernel release,
rlimits inherited from us), and be internally consistent (defer_taskrun
implies single_issuer, ...). The text report must exit 0 and show its
section headings. Exit 0 on success, 1 on failure (meson's convention).
"""
import json
import os
import resource
import subprocess
import sys

BOOL, STR, INT, NULL = bool, str, int, type(None)

# ringserve's io_uring features, in its order (the summary's keys).
URING_FEATURES = ("multishot-accept multishot-recv buf-ring fixed-files ring-fd "
                  "defer-taskrun send-zc sqpoll bundle batch-wait direct-socket ext-arg "
                  "shutdown-op buf-recycle buf-inc resize wait-reg direct-pipe "
                  "direct-listen").split()

SCHEMA = {
    "ringserve": (STR,),
    "kernel": (STR, NULL),
    "arch": (STR, NULL),
    "liburing": (STR,),
    "cpus": (INT, NULL),
    "io_uring": {
        "compiled": (BOOL,),
        "available": (BOOL,),
        "errno": (STR, NULL),
        "reason": (STR, NULL),
        "io_uring_disabled": (INT, NULL),
        "features_mask": (INT,),
        "opcodes": dict.fromkeys(
            "accept recv send send_zc recvmsg sendmsg poll_add provide_buffers "
            "close shutdown async_cancel socket read msg_ring bind listen recv_zc "
            "epoll_wait pipe".split(), (BOOL,)),
        "setup": dict.fromkeys(
            "sqpoll single_issuer defer_taskrun coop_taskrun taskrun_flag "
            "submit_all cqsize no_sqarray sq_rewind".split(), (BOOL,)),
        "features": dict.fromkeys(
            "single_mmap nodrop submit_stable rw_cur_pos cur_personality "
            "fast_poll poll_32bits sqpoll_nonfixed ext_arg native_workers "
            "rsrc_tags cqe_skip linked_file reg_reg_ring recvsend_bundle min_timeout".split(),
            (BOOL,)),
        "register": dict(dict.fromkeys(
            "buf_ring sparse_files ring_fd buf_ring_inc resize_rings wait_region napi "
            "zcrx_nodev query".split(), (BOOL,)),
            zcrx_lo=(STR, NULL), query_request_ops=(INT, NULL),
            query_register_ops=(INT, NULL)),
        "multishot": dict.fromkeys(
            "accept recv accept_direct send_zc socket_direct sockopt_cmd buf_recycle "
            "pipe_direct listen_direct".split(),
            (BOOL,)),
    },
    "epoll": dict.fromkeys(["exclusive", "busy_poll_ioctl"], (BOOL,)),
    "limits": {
        "nofile": {"soft": (INT, NULL), "hard": (INT, NULL)},
        "memlock": {"soft": (INT, NULL), "hard": (INT, NULL)},
    },
    "summary": {
        "backend": (STR,),
        "backend_reason": (STR, NULL),
        "default_features": (STR,),
        "features": dict.fromkeys(URING_FEATURES, (STR,)),
        "reasons": dict.fromkeys(URING_FEATURES, (STR, NULL)),
        "not_used": dict.fromkeys(["napi", "zcrx"], (STR,)),
    },
}

FEATURE_BITS = [
    "single_mmap", "nodrop", "submit_stable", "rw_cur_pos", "cur_personality",
    "fast_poll", "poll_32bits", "sqpoll_nonfixed", "ext_arg", "native_workers",
    "rsrc_tags", "cqe_skip", "linked_file", "reg_reg_ring", "recvsend_bundle", "min_timeout",
]

errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


def check_schema(obj, schema, path=""):
    check(isinstance(obj, dict), f"{path or 'top level'} is not an object")
    if not isinstance(obj, dict):
        return
    check(set(obj) == set(schema),
          f"{path or 'top level'}: keys differ from the schema: "
          f"missing {sorted(set(schema) - set(obj))}, extra {sorted(set(obj) - set(schema))}")
    for key, want in schema.items():
        if key not in obj:
            continue
        sub = f"{path}.{key}" if path else key
        if isinstance(want, dict):
            check_schema(obj[key], want, sub)
        else:
            # bool is a subclass of int in Python: compare exact types.
            check(type(obj[key]) in want, f"{sub}: {obj[key]!r} is not {want}")


def check_summary(d):
    """The summary agrees with the facts: the backend auto picks, a reason for
    each unavailable feature and none for the others, and the defaults are
    the features marked default, in order."""
    sm, u = d["summary"], d["io_uring"]
    check(sm["backend"] == ("uring" if u["available"] else "epoll"),
          f"summary.backend {sm['backend']} with available={u['available']}")
    check((sm["backend_reason"] is None) == u["available"], "backend_reason vs available")
    for f in URING_FEATURES:
        v, why = sm["features"][f], sm["reasons"][f]
        check(v in ("default", "opt-in", "unavailable"), f"summary.features.{f} = {v}")
        check((why is not None) == (v == "unavailable"), f"summary.reasons.{f} = {why}")
        if f in ("sqpoll", "bundle", "batch-wait"):
            check(v != "default", f"opt-in feature {f} is default")
    defaults = [f for f in URING_FEATURES if sm["features"][f] == "default"]
    check(sm["default_features"] == (",".join(defaults) or "none"),
          f"default_features {sm['default_features']} != {defaults}")
    if u["available"]:
        check(sm["features"]["bundle"] != "unavailable" or not u["features"]["recvsend_bundle"]
              or not u["register"]["buf_ring"], "bundle unavailable despite the facts")
        check((sm["features"]["batch-wait"] != "unavailable") == u["features"]["min_timeout"],
              "batch-wait verdict disagrees with features.min_timeout")
        check((sm["features"]["ext-arg"] != "unavailable") == u["features"]["ext_arg"],
              "ext-arg verdict disagrees with features.ext_arg")
        check((sm["features"]["shutdown-op"] != "unavailable") == u["opcodes"]["shutdown"],
              "shutdown-op verdict disagrees with opcodes.shutdown")
        check((sm["features"]["direct-pipe"] != "unavailable")
              == (u["multishot"]["pipe_direct"] and u["register"]["sparse_files"]
                  and u["multishot"]["accept_direct"]),
              "direct-pipe verdict disagrees with the facts")
        check((sm["features"]["buf-recycle"] != "unavailable")
              == u["multishot"]["buf_recycle"], "buf-recycle verdict disagrees with the fact")
        check((sm["features"]["buf-inc"] != "unavailable")
              == (u["register"]["buf_ring"] and u["register"]["buf_ring_inc"]),
              "buf-inc verdict disagrees with register.buf_ring_inc")
        check((sm["features"]["resize"] != "unavailable")
              == (u["register"]["resize_rings"] and u["setup"]["defer_taskrun"]),
              "resize verdict disagrees with register.resize_rings and defer_taskrun")
        check((sm["features"]["wait-reg"] != "unavailable")
              == (u["register"]["wait_region"] and u["features"]["ext_arg"]),
              "wait-reg verdict disagrees with register.wait_region and ext_arg")


def check_consistency(d):
    u = d["io_uring"]
    every = [v for sec in ("opcodes", "setup", "features", "register", "multishot")
             for v in u[sec].values()]
    if not u["available"]:
        check(u["errno"] and u["reason"], "unavailable without errno and reason")
        check(not any(every), "unavailable, yet some fact is true")
        return
    check(u["errno"] is None and u["reason"] is None, "available, yet a reason")
    check(u["compiled"], "available but not compiled in")
    s, r, m = u["setup"], u["register"], u["multishot"]
    check(not s["defer_taskrun"] or s["single_issuer"], "defer_taskrun without single_issuer")
    check(not s["taskrun_flag"] or s["coop_taskrun"], "taskrun_flag without coop_taskrun")
    check(not m["recv"] or r["buf_ring"], "multishot recv without buf_ring")
    check(not m["accept_direct"] or r["sparse_files"], "accept_direct without sparse_files")
    check(not m["send_zc"] or u["opcodes"]["send_zc"], "send_zc works but is not listed")
    check(not m["socket_direct"] or u["opcodes"]["socket"], "socket_direct works but is not listed")
    check(not m["sockopt_cmd"] or m["socket_direct"], "sockopt_cmd without socket_direct")
    check(not r["resize_rings"] or s["defer_taskrun"], "resize_rings without defer_taskrun")
    check(r["query"] == (r["query_request_ops"] is not None), "query counts without query")
    check(not m["listen_direct"] or m["sockopt_cmd"], "listen_direct without sockopt_cmd")
    check(not m["pipe_direct"] or r["sparse_files"], "pipe_direct without sparse_files")
    for bit, name in enumerate(FEATURE_BITS):
        check(u["features"][name] == bool(u["features_mask"] >> bit & 1),
              f"features.{name} disagrees with features_mask")


def check_environment(d):
    check(d["kernel"] == os.uname().release, "kernel release differs from uname")
    check(d["cpus"] is None or d["cpus"] >= 1, "cpus < 1")
    for key, res in (("nofile", resource.RLIMIT_NOFILE), ("memlock", resource.RLIMIT_MEMLOCK)):
        soft, hard = resource.getrlimit(res)
        want = {"soft": None if soft == resource.RLIM_INFINITY else soft,
                "hard": None if hard == resource.RLIM_INFINITY else hard}
        check(d["limits"][key] == want, f"limits.{key} {d['limits'][key]} != {want}")


def run(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=20)
    check(p.returncode == 0, f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = sys.argv[1]
    out = run(binary, "--probe", "--json")
    try:
        d = json.loads(out)
    except json.JSONDecodeError as e:
        errors.append(f"invalid JSON ({e}):\n{out}")
    else:
        check_schema(d, SCHEMA)
        if not errors:
            check_consistency(d)
            check_summary(d)
            check_environment(d)
    text = run(binary, "--probe")
    check(text.split("\n")[2].startswith("Summary"), "the text report does not open with the summary")
    for heading in ("System", "io_uring", "epoll", "Limits"):
        check(f"\n{heading}\n" in text, f"text report lacks the heading {heading!r}")
    for e in errors:
        print("FAIL:", e, file=sys.stderr)
    if not errors:
        print(out, end="")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
