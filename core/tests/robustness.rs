//! Robustness: no input from a peer can make a node panic, and its term and commit index never
//! move backwards, whatever arrives — unknown senders, stale or future terms, indexes out of
//! range, malformed batches, duplicates, reordering, bogus persistence reports.

mod common;

use proptest::prelude::*;
use rafting_core::raft::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, BatchId, Config, Entry, EntryPayload,
    Envelope, Heartbeat, HeartbeatResponse, Input, InstallSnapshot, InstallSnapshotResponse,
    Message, Node, PreVote, PreVoteResponse, ProposalId, ReadId, RequestVote, RequestVoteResponse,
    TimeoutNow,
};
use rafting_core::{LogIndex, Millis, NodeId, Term};

fn term() -> impl Strategy<Value = Term> {
    (0u64..8).prop_map(Term)
}

fn index() -> impl Strategy<Value = LogIndex> {
    prop_oneof![(0u64..12).prop_map(LogIndex), Just(LogIndex(u64::MAX))]
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(
        (
            term(),
            index(),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
            prop::option::of(membership()),
        ),
        0..5,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .map(|(term, index, data, membership)| Entry {
                term,
                index,
                // Configurations arrive too, including absurd ones (no voters at all).
                payload: match membership {
                    Some(membership) => EntryPayload::Configuration(membership),
                    None => data.map_or(EntryPayload::Noop, |data| {
                        EntryPayload::Command(data.into())
                    }),
                },
            })
            .collect()
    })
}

fn membership() -> impl Strategy<Value = rafting_core::raft::Membership> {
    let ids = || prop::collection::btree_set((0u64..6).prop_map(NodeId), 0..4);
    (ids(), ids()).prop_map(|(voters, learners)| rafting_core::raft::Membership {
        voters,
        learners,
        addresses: Default::default(),
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (term(), index(), term()).prop_map(|(term, last_log_index, last_log_term)| {
            Message::PreVote(PreVote {
                term,
                last_log_index,
                last_log_term,
            })
        }),
        (term(), any::<bool>()).prop_map(|(term, granted)| Message::PreVoteResponse(
            PreVoteResponse { term, granted }
        )),
        (term(), index(), term(), any::<bool>()).prop_map(|(term, i, t, transfer)| {
            Message::RequestVote(RequestVote {
                term,
                last_log_index: i,
                last_log_term: t,
                transfer,
            })
        }),
        (term(), any::<bool>()).prop_map(|(term, granted)| {
            Message::RequestVoteResponse(RequestVoteResponse { term, granted })
        }),
        (term(), index(), term(), entries(), index()).prop_map(|(term, i, t, entries, c)| {
            Message::AppendEntries(AppendEntries {
                term,
                prev_log_index: i,
                prev_log_term: t,
                entries,
                leader_commit: c,
            })
        }),
        (term(), index()).prop_map(|(term, match_index)| {
            let outcome = AppendOutcome::Accepted { match_index };
            Message::AppendEntriesResponse(AppendEntriesResponse { term, outcome })
        }),
        (term(), index(), index(), prop::option::of(term())).prop_map(|(term, r, h, t)| {
            let outcome = AppendOutcome::Rejected {
                rejected_prev_index: r,
                hint_index: h,
                hint_term: t,
            };
            Message::AppendEntriesResponse(AppendEntriesResponse { term, outcome })
        }),
        (term(), index(), 0u64..4).prop_map(|(term, commit, round)| Message::Heartbeat(
            Heartbeat {
                term,
                commit,
                round
            }
        )),
        (term(), 0u64..4, index()).prop_map(|(term, round, last_log_index)| {
            Message::HeartbeatResponse(HeartbeatResponse {
                term,
                round,
                last_log_index,
            })
        }),
        term().prop_map(|term| Message::TimeoutNow(TimeoutNow { term })),
        (
            term(),
            index(),
            term(),
            prop_oneof![0u64..64, Just(u64::MAX)],
            any::<u32>(),
            prop_oneof![0u64..64, Just(u64::MAX - 2)],
            prop::collection::vec(any::<u8>(), 0..16),
            membership(),
        )
            .prop_map(
                |(term, index, snapshot_term, total_bytes, checksum, offset, data, membership)| {
                    Message::InstallSnapshot(InstallSnapshot {
                        term,
                        index,
                        snapshot_term,
                        total_bytes,
                        checksum,
                        membership,
                        offset,
                        data,
                    })
                }
            ),
        (term(), index(), term(), any::<u64>(), any::<bool>()).prop_map(
            |(term, index, snapshot_term, next_offset, installed)| {
                Message::InstallSnapshotResponse(InstallSnapshotResponse {
                    term,
                    index,
                    snapshot_term,
                    next_offset,
                    installed,
                })
            }
        ),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (0u64..6, 0u64..6, message()).prop_map(|(from, to, message)| {
            // Mostly well addressed, sometimes from strangers or to someone else.
            let to = if to < 5 { NodeId(1) } else { NodeId(to) };
            Input::Message(Envelope { from: NodeId(from), to, message })
        }),
        1 => Just(Input::Tick),
        1 => Just(Input::Campaign),
        1 => (0u64..6).prop_map(|peer| Input::PeerUnreachable { peer: NodeId(peer) }),
        1 => (0u64..100, prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(id, data)| Input::Propose { id: ProposalId(id), data }),
        1 => (0u64..100).prop_map(|id| Input::Read { id: ReadId(id) }),
        1 => (0u64..5).prop_map(|to| Input::TransferLeadership { to: NodeId(to) }),
        1 => (0u64..20, index(), term()).prop_map(|(sequence, last_index, last_term)| {
            Input::Persisted(BatchId { sequence, last_index, last_term })
        }),
    ]
}

/// Feeds one input (persisting its batch at once when `persist`), and checks that the term and
/// commit index did not move back and the commit index stays within the log.
fn step_and_check(
    node: &mut Node,
    now: u64,
    input: Input,
    persist: bool,
) -> Result<(), TestCaseError> {
    let term_before = node.term();
    let commit_before = node.commit_index();
    let output = node.step(Millis(now), input);
    if let Some(batch) = output.persist
        && persist
    {
        let _ = node.step(Millis(now), Input::Persisted(batch.id));
    }
    prop_assert!(node.term() >= term_before);
    prop_assert!(node.commit_index() >= commit_before);
    prop_assert!(node.commit_index() <= node.last_index());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary, often nonsensical inputs never panic the node; its term and commit index
    /// never decrease, and its log's terms never decrease along the log.
    #[test]
    fn arbitrary_inputs_never_panic_and_never_move_term_or_commit_back(
        inputs in prop::collection::vec((0u64..400, input()), 1..80)
    ) {
        let voters = [NodeId(1), NodeId(2), NodeId(3)];
        let mut node = Node::new(Config::new(NodeId(1), voters, 5)).unwrap();
        let mut now = 0;
        for (advance, input) in inputs {
            now += advance;
            // Persist honestly half the time, so both durable and non-durable paths run.
            step_and_check(&mut node, now, input, now % 2 == 0)?;
            let log = node.log();
            for i in 1..node.last_index().get() {
                prop_assert!(log.term_at(LogIndex(i)) <= log.term_at(LogIndex(i + 1)));
            }
        }
    }
}

/// A node of a 3-node cluster driven to leadership in term 1 by well-formed votes.
fn leader_node() -> Node {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let mut node = Node::new(Config::new(NodeId(1), voters, 5)).unwrap();
    let deliver = |node: &mut Node, message: Message| {
        let envelope = Envelope {
            from: NodeId(2),
            to: NodeId(1),
            message,
        };
        let output = node.step(Millis(0), Input::Message(envelope));
        if let Some(batch) = output.persist {
            let _ = node.step(Millis(0), Input::Persisted(batch.id));
        }
    };
    let _ = node.step(Millis(0), Input::Campaign);
    deliver(
        &mut node,
        Message::PreVoteResponse(PreVoteResponse {
            term: Term(1),
            granted: true,
        }),
    );
    let output = node.step(Millis(0), Input::Tick);
    assert!(output.persist.is_none());
    let batch = node.step(
        Millis(0),
        Input::Persisted(BatchId {
            sequence: 1,
            last_index: LogIndex(0),
            last_term: Term(0),
        }),
    );
    let _ = batch;
    deliver(
        &mut node,
        Message::RequestVoteResponse(RequestVoteResponse {
            term: Term(1),
            granted: true,
        }),
    );
    assert!(node.is_leader(), "{:?}", node.status());
    node
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The same, starting from a leader, so the leader's handlers meet garbage too.
    #[test]
    fn a_leader_survives_arbitrary_inputs(
        inputs in prop::collection::vec((0u64..300, input()), 1..80)
    ) {
        let mut node = leader_node();
        let mut now = 0;
        for (advance, input) in inputs {
            now += advance;
            step_and_check(&mut node, now, input, true)?;
        }
    }
}

/// One chunk of `image` as a leader in term 1 would send it.
fn chunk_of(image: &[u8], offset: usize, length: usize, flip: Option<usize>) -> Message {
    let end = (offset + length).min(image.len());
    let mut data = image[offset.min(end)..end].to_vec();
    if let Some(position) = flip.filter(|_| !data.is_empty()) {
        let position = position % data.len();
        data[position] ^= 1;
    }
    Message::InstallSnapshot(InstallSnapshot {
        term: Term(1),
        index: LogIndex(50),
        snapshot_term: Term(1),
        total_bytes: image.len() as u64,
        checksum: crc32c::crc32c(image),
        membership: rafting_core::raft::Membership::new([1, 2, 3].map(NodeId), []),
        offset: offset as u64,
        data,
    })
}

proptest! {
    /// A follower fed a snapshot's chunks in any order, duplicated, some damaged, never
    /// panics, and if it installs a snapshot, the image is exactly the leader's: damaged or
    /// misplaced bytes are refused by the end-to-end checksum.
    #[test]
    fn a_follower_installs_only_the_exact_image(
        image in prop::collection::vec(any::<u8>(), 1..200),
        chunks in prop::collection::vec((0usize..200, 1usize..40, prop::option::of(any::<usize>())), 1..60),
    ) {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let mut node = Node::new(Config::new(NodeId(2), ids, 3)).unwrap();
        let mut now = Millis(0);
        for (offset, length, flip) in chunks {
            now = now.plus(1);
            let message = chunk_of(&image, offset, length, flip);
            let envelope = Envelope { from: NodeId(1), to: NodeId(2), message };
            let output = node.step(now, Input::Message(envelope));
            if let Some(installed) = output.installed {
                prop_assert_eq!(installed.image.as_slice(), image.as_slice());
                prop_assert_eq!(node.log().base(), LogIndex(50));
            }
        }
    }
}
