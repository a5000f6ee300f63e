#!/usr/bin/env python3
"""Planted bugs: does the simulator, alone, catch them?

Each planted bug is a small, realistic mistake in `core/src/raft`, written as an exact text
substitution. For each one this script checks out the current commit into a scratch worktree,
plants the bug, builds `rafting` in release, and runs every shipped scenario for SEEDS seeds
(default 1000; the scenarios written for its story first), stopping at the first scenario that
catches it. It prints one line per bug
and writes `sim/mutation/planted-report.md`.

    python3 sim/mutation/planted.py [--seeds 1000] [--only NAME]

It leaves the repository untouched (the worktree lives under /tmp and is removed); builds share
one target directory under /tmp so that only the crates downstream of core are rebuilt.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]

# name -> (file, text to find, text to put instead, what the bug is)
PLANTED = {
    "vote_without_log_check": (
        "core/src/raft/election.rs",
        """        let granted = self.can_vote_for(from, request.term, false)
            && self
                .log
                .is_up_to_date(request.last_log_index, request.last_log_term);""",
        """        let granted = self.can_vote_for(from, request.term, false);""",
        "a vote is granted without the §5.4.1 up-to-date-log check",
    ),
    "commit_old_term_by_counting": (
        "core/src/raft/replication.rs",
        """        if candidate > self.log.commit() && (own_term || self.config.planted_commit_by_counting) {""",
        """        if candidate > self.log.commit() {""",
        "a leader commits an old-term entry by counting replicas (Figure 8)",
    ),
    "read_without_quorum_round": (
        "core/src/raft/read.rs",
        """        if term_committed {
            leader
                .reads
                .unconfirmed
                .push_back((id, commit, leader.reads.round + 1));
            leader.reads.round_needed = true;
        } else {""",
        """        if term_committed {
            self.output.reads.push(ReadOutcome::Ready { id, index: commit });
        } else {""",
        "ReadIndex reads answered without the quorum round",
    ),
    "no_noop_at_term_start": (
        "core/src/raft/election.rs",
        """        let index = self.append_entry(EntryPayload::Noop);
        debug_assert_eq!(index, next_index);""",
        """        let _ = (EntryPayload::Noop, next_index);""",
        "no no-op entry at the start of a term",
    ),
    "candidate_asks_before_durable": (
        "core/src/raft/election.rs",
        """            self.send_when_durable(peer, Message::RequestVote(request.clone()));""",
        """            self.send(peer, Message::RequestVote(request.clone()));""",
        "a candidate asks for votes before its term and vote are durable (issue 19)",
    ),
    "wiped_node_votes_at_once": (
        "core/src/raft/node.rs",
        """    pub(super) fn may_vote(&self) -> bool {
        self.catch_up.is_none()""",
        """    pub(super) fn may_vote(&self) -> bool {
        true""",
        "a node on an empty disk votes before it has caught up (issue 10)",
    ),
    "membership_changes_unguarded": (
        "core/src/raft/reconfiguration.rs",
        """        if !self.config.planted_membership_unguarded {""",
        """        if self.config.planted_membership_unguarded {""",
        "a leader proposes a membership change before committing in its term, and while "
        "another is uncommitted (the single-server change bug, issue 16)",
    ),
}


# The scenarios written for each bug's story run first (then every other, in file-name
# order), so a bug is not searched for through the costly tenant scenarios before the one
# built to catch it.
LIKELY_FIRST = {
    "vote_without_log_check": ["slow_disk_leader_crash.toml", "stale_term_answers.toml"],
    "commit_old_term_by_counting": ["figure8_paper.toml", "figure8.toml"],
    "read_without_quorum_round": ["paused_leader_reads.toml", "kv_chaos.toml"],
    "no_noop_at_term_start": ["figure8_paper.toml", "figure8.toml", "deposed_leader.toml"],
    "candidate_asks_before_durable": ["brief_heavy_loss.toml"],
    "wiped_node_votes_at_once": ["disk_wipe.toml"],
    "membership_changes_unguarded": ["membership_grow_shrink.toml"],
}


def run(command, **kwargs):
    return subprocess.run(command, check=True, text=True, **kwargs)


def scenarios(name):
    folder = REPO / "scenarios"
    every = sorted(p for p in folder.glob("*.toml") if p.name != "regressions.toml")
    first = [folder / file for file in LIKELY_FIRST.get(name, []) if (folder / file).exists()]
    return first + [p for p in every if p not in first]


def try_bug(name, seeds, target_dir):
    path, find, replace, _ = PLANTED[name]
    worktree = pathlib.Path(f"/tmp/rafting-planted-{name}")
    if worktree.exists():
        run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)])
    run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(worktree), "HEAD"])
    try:
        source = worktree / path
        text = source.read_text()
        if find not in text:
            return ("stale", None, f"the text to replace is no longer in {path}")
        source.write_text(text.replace(find, replace, 1))
        env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
        build = subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "rafting-server"],
            cwd=worktree, env=env, capture_output=True, text=True,
        )
        if build.returncode != 0:
            return ("build_failed", None, build.stderr[-2000:])
        binary = target_dir / "release" / "rafting"
        for scenario in scenarios(name):
            result = subprocess.run(
                [str(binary), "sim", "run", str(scenario), "--seeds", str(seeds),
                 "--jobs", "2", "--json"],
                capture_output=True, text=True,
            )
            summary = json.loads(result.stdout.strip().splitlines()[-1])
            if summary["violations"] > 0:
                first = summary["failures"][0]
                detail = f"{summary['violations']}/{seeds} seeds; first: seed {first['seed']} {first['check']}"
                return ("caught", scenario.name, detail)
        return ("survived", None, f"no scenario caught it in {seeds} seeds each")
    finally:
        run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--only")
    arguments = parser.parse_args()
    target_dir = pathlib.Path("/tmp/rafting-planted-target")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    names = [arguments.only] if arguments.only else list(PLANTED)
    rows = []
    for name in names:
        started = time.time()
        verdict, scenario, detail = try_bug(name, arguments.seeds, target_dir)
        elapsed = time.time() - started
        row = (name, PLANTED[name][3], verdict, scenario or "-", detail, elapsed)
        rows.append(row)
        print(f"{name}: {verdict} by {scenario or '-'} ({detail}) in {elapsed:.0f} s", flush=True)
    lines = [
        "# Planted bugs against the simulator alone",
        "",
        f"Commit {commit}, {arguments.seeds} seeds per scenario, "
        f"`python3 sim/mutation/planted.py --seeds {arguments.seeds}`. A bug is caught when "
        "any shipped scenario reports a violation; the scenarios written for its story run "
        "first (`LIKELY_FIRST`), then every other in file-name order, and the first that "
        "catches it is named.",
        "",
        "| planted bug | what it is | verdict | first scenario | detail |",
        "|---|---|---|---|---|",
    ]
    for name, what, verdict, scenario, detail, _ in rows:
        lines.append(f"| `{name}` | {what} | {verdict} | {scenario} | {detail} |")
    if not arguments.only:
        (REPO / "sim" / "mutation" / "planted-report.md").write_text("\n".join(lines) + "\n")
    return 0 if all(row[2] == "caught" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
