#!/usr/bin/env python3
"""Compares Autobahn fuzzingclient reports with the committed expected results.

usage: compare.py EXPECTED.json REPORT_DIR... [--update]

Every case's `behavior` must be the expected one (or one of the expected list, for
cases whose outcome depends on timing: the reserved-bit and reserved-opcode cases of
sections 3 and 4, where the close races the echo of earlier frames), and no case may
be FAILED.
With --update the expected file is rewritten from the reports (review the diff;
lists are kept where a case's result is one of them).
Prints the counts per behaviour and a closing `autobahn: N passed, N failed` line.
"""
import collections
import json
import os
import sys


def case_key(case):
    return [int(part) for part in case.split(".")]


def load_reports(dirs):
    results = {}
    for d in dirs:
        with open(os.path.join(d, "index.json")) as f:
            for cases in json.load(f).values():
                for case, info in cases.items():
                    results[case] = info["behavior"]
    return results


def main(argv):
    update = "--update" in argv
    args = [a for a in argv if a != "--update"]
    expected_path, report_dirs = args[0], args[1:]
    got = load_reports(report_dirs)
    counts = collections.Counter(got.values())
    print("autobahn behaviours: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if update:
        with open(expected_path) as f:
            old = json.load(f)
        ordered = {}
        for k in sorted(got, key=case_key):
            prev = old.get(k)
            keep = isinstance(prev, list) and got[k] in prev
            ordered[k] = prev if keep else got[k]
        with open(expected_path, "w") as f:
            json.dump(ordered, f, indent=1)
            f.write("\n")
        print(f"updated {expected_path} with {len(ordered)} cases")
    with open(expected_path) as f:
        expected = json.load(f)
    problems = []
    for case in sorted(set(expected) | set(got), key=case_key):
        want, have = expected.get(case, "(not expected)"), got.get(case, "(not run)")
        accepted = want if isinstance(want, list) else [want]
        if have == "FAILED" or have not in accepted:
            problems.append(f"  {case}: expected {want}, got {have}")
    if problems:
        print("differences from the expected results:")
        print("\n".join(problems))
    passed = len(got) - len([p for p in problems if "(not run)" not in p])
    print(f"autobahn: {passed} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
