//! The key space: key rules, get/put/delete, compare-and-set, listings and transactions.

mod store_support;

use rafting_core::store::{
    Compare, CompareTarget, ListQuery, Operation, Outcome, Relation, Revision, StoreConfig,
    StoreError, TenantId, Transaction, TransactionOperation, TransactionResult,
};
use store_support::Harness;

fn error_code<T: std::fmt::Debug>(result: Result<T, StoreError>) -> &'static str {
    result.expect_err("expected an error").code()
}

#[test]
fn key_rules_refuse_malformed_keys_with_invalid_key() {
    // Proves each key rule with one offending key, and that a valid key passes.
    let mut harness = Harness::new();
    for bad in [
        "",
        "relative/key",
        "/",
        "/a//b",
        "/a/",
        "/a/./b",
        "/a/../b",
        "/a/\u{7}",
    ] {
        assert_eq!(
            error_code(harness.put(bad, b"v")),
            "invalid_key",
            "key {bad:?}"
        );
    }
    assert!(harness.put("/services/web/members/n1", b"v").is_ok());
    assert_eq!(harness.store.revision(), Revision::new(1));
}

#[test]
fn keys_and_values_over_their_caps_are_too_large() {
    // Proves the length caps: at the cap is fine, one byte more is too_large.
    let config = StoreConfig {
        key_bytes_max: 8,
        value_bytes_max: 4,
        ..StoreConfig::default()
    };
    let mut harness = Harness::with_config(config);
    assert!(harness.put("/1234567", b"1234").is_ok());
    assert_eq!(error_code(harness.put("/12345678", b"v")), "too_large");
    assert_eq!(error_code(harness.put("/k", b"12345")), "too_large");
}

#[test]
fn put_get_delete_track_versions_and_revisions() {
    // Proves the metadata: version counts writes since creation, create/modify revisions
    // follow the global revision, and a delete resets the version for the next create.
    let mut harness = Harness::new();
    assert_eq!(
        harness.put("/a", b"1"),
        Ok(Outcome::Written {
            revision: Revision::new(1),
            version: 1
        })
    );
    harness.put("/b", b"x").unwrap();
    harness.put("/a", b"2").unwrap();
    let found = harness.store.get(TenantId::DEFAULT, "/a").unwrap();
    assert_eq!(found.value.as_deref(), Some(&b"2"[..]));
    assert_eq!(
        (found.version, found.create_revision, found.modify_revision),
        (2, Revision::new(1), Revision::new(3))
    );
    assert_eq!(
        harness.delete("/a"),
        Ok(Outcome::Deleted {
            revision: Revision::new(4)
        })
    );
    assert_eq!(
        error_code(harness.store.get(TenantId::DEFAULT, "/a")),
        "not_found"
    );
    assert_eq!(error_code(harness.delete("/a")), "not_found");
    assert_eq!(
        harness.store.revision(),
        Revision::new(4),
        "a refused delete changes nothing"
    );
    harness.put("/a", b"3").unwrap();
    let recreated = harness.store.get(TenantId::DEFAULT, "/a").unwrap();
    assert_eq!(
        (recreated.version, recreated.create_revision),
        (1, Revision::new(5))
    );
}

#[test]
fn compare_and_set_on_version_and_create_if_absent() {
    // Proves CAS: version 0 creates only if absent, a matching version writes, a stale one
    // gets version_mismatch with the actual version and changes nothing.
    let mut harness = Harness::new();
    assert!(
        harness
            .request(Operation::compare_and_set("/lock", 0, b"me"))
            .is_ok()
    );
    assert_eq!(
        harness.request(Operation::compare_and_set("/lock", 0, b"you")),
        Err(StoreError::VersionMismatch {
            key: "/lock".into(),
            expected: 0,
            actual: 1
        })
    );
    assert!(
        harness
            .request(Operation::compare_and_set("/lock", 1, b"me2"))
            .is_ok()
    );
    assert_eq!(
        error_code(harness.request(Operation::compare_and_set("/lock", 1, b"x"))),
        "version_mismatch"
    );
    assert_eq!(harness.value("/lock"), Some(b"me2".to_vec()));
    assert_eq!(harness.store.revision(), Revision::new(2));
}

#[test]
fn list_is_hierarchical_ordered_limited_and_continues() {
    // Proves prefix semantics (a prefix covers itself and its subtree, not siblings sharing
    // its spelling) and paging with a limit and a continuation key.
    let mut harness = Harness::new();
    for key in [
        "/web",
        "/web/b",
        "/web/a",
        "/web/a/deep",
        "/webby",
        "/web-x",
        "/other",
    ] {
        harness.put(key, key.as_bytes()).unwrap();
    }
    let all = harness.store.list(&ListQuery::new("/web")).unwrap();
    let keys: Vec<&str> = all.entries.iter().map(|entry| entry.key.as_str()).collect();
    assert_eq!(keys, ["/web", "/web/a", "/web/a/deep", "/web/b"]);
    assert_eq!(all.continue_after, None);
    assert_eq!(all.revision, Revision::new(7));

    let mut query = ListQuery {
        limit: 2,
        keys_only: true,
        ..ListQuery::new("/web")
    };
    let first = harness.store.list(&query).unwrap();
    assert_eq!(first.entries.len(), 2);
    assert!(first.entries.iter().all(|entry| entry.value.is_none()));
    assert_eq!(first.continue_after.as_deref(), Some("/web/a"));
    query.after = first.continue_after;
    let second = harness.store.list(&query).unwrap();
    let keys: Vec<&str> = second
        .entries
        .iter()
        .map(|entry| entry.key.as_str())
        .collect();
    assert_eq!(keys, ["/web/a/deep", "/web/b"]);
    assert_eq!(second.continue_after, None);

    let everything = harness.store.list(&ListQuery::new("/")).unwrap();
    assert_eq!(everything.entries.len(), 7);
    assert_eq!(
        error_code(harness.store.list(&ListQuery::new("web"))),
        "invalid_key"
    );
}

#[test]
fn list_after_a_position_outside_the_prefix_is_an_empty_page_or_the_whole_prefix() {
    // Proves `after` is a cursor that may name any position, not only a key under the prefix:
    // a position past the prefix's subtree (`0`, `~`, `zzz`, a later sibling) answers an empty
    // page, one before it answers the whole subtree, and none of them panics (issue 10, item
    // 1: `GET /v1/kv/?list&after=0` panicked the node loop inside `BTreeMap::range`).
    let mut harness = Harness::new();
    for key in ["/a/x", "/b/x", "/c/x"] {
        harness.put(key, b"v").unwrap();
    }
    let keys_after = |prefix: &str, after: &str| -> Vec<String> {
        let query = ListQuery {
            after: Some(after.to_owned()),
            ..ListQuery::new(prefix)
        };
        let listing = harness
            .store
            .list(&query)
            .expect("a cursor is never an error");
        listing.entries.into_iter().map(|entry| entry.key).collect()
    };
    for past in ["0", "~", "zzz", "/d", "\u{10ffff}"] {
        assert!(keys_after("/", past).is_empty(), "after={past:?} under /");
    }
    for past in ["/b", "/b/x", "/a0", "/a~", "~", "0", "zzz"] {
        assert!(keys_after("/a", past).is_empty(), "after={past:?} under /a");
    }
    for before in ["", "!", "/", "/a", "/0"] {
        assert_eq!(
            keys_after("/b", before),
            ["/b/x"],
            "after={before:?} under /b"
        );
    }
    assert_eq!(keys_after("/", "/a/x"), ["/b/x", "/c/x"]);
}

#[test]
fn tenants_have_separate_key_spaces() {
    // Proves isolation: the same key in two tenants holds two values, and listings and gets
    // only see their own tenant.
    let mut harness = Harness::new();
    let other = TenantId::new(7);
    harness.put("/k", b"default").unwrap();
    harness
        .request_in(other, Operation::put("/k", b"other"))
        .unwrap();
    assert_eq!(harness.value("/k"), Some(b"default".to_vec()));
    let theirs = harness.store.get(other, "/k").unwrap();
    assert_eq!(theirs.value.as_deref(), Some(&b"other"[..]));
    let listing = harness
        .store
        .list(&ListQuery {
            tenant: other,
            ..ListQuery::new("/")
        })
        .unwrap();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(harness.store.key_count(other), 1);
}

fn version_is(key: &str, version: u64) -> Compare {
    Compare {
        key: key.into(),
        relation: Relation::Equal,
        target: CompareTarget::Version(version),
    }
}

fn put_op(key: &str, value: &[u8]) -> TransactionOperation {
    TransactionOperation::Put {
        key: key.into(),
        value: value.to_vec(),
        session: None,
    }
}

#[test]
fn transaction_runs_one_branch_at_one_revision() {
    // Proves the branch choice and that all changes of a transaction share one revision,
    // with reads inside it seeing the writes before them.
    let mut harness = Harness::new();
    harness.put("/a", b"1").unwrap();
    let transaction = Transaction {
        compares: vec![version_is("/a", 1), version_is("/b", 0)],
        success: vec![
            put_op("/b", b"2"),
            TransactionOperation::Delete { key: "/a".into() },
            TransactionOperation::Get { key: "/b".into() },
            TransactionOperation::Delete {
                key: "/missing".into(),
            },
        ],
        failure: vec![put_op("/failed", b"1")],
    };
    let Ok(Outcome::Transaction {
        succeeded,
        revision,
        results,
    }) = harness.request(Operation::Transaction(transaction.clone()))
    else {
        panic!("the transaction is valid");
    };
    assert!(succeeded);
    assert_eq!(revision, Revision::new(2));
    assert_eq!(results[0], TransactionResult::Written { version: 1 });
    assert_eq!(results[1], TransactionResult::Deleted { existed: true });
    assert!(
        matches!(&results[2], TransactionResult::Got(Some(found)) if found.modify_revision == Revision::new(2))
    );
    assert_eq!(results[3], TransactionResult::Deleted { existed: false });

    // The same transaction again: its compares now fail, so the failure branch runs.
    let again = harness
        .request(Operation::Transaction(transaction))
        .unwrap();
    assert!(matches!(
        again,
        Outcome::Transaction {
            succeeded: false,
            ..
        }
    ));
    assert_eq!(harness.value("/failed"), Some(b"1".to_vec()));
    assert_eq!(harness.store.revision(), Revision::new(3));
}

#[test]
fn an_invalid_transaction_changes_nothing() {
    // Proves atomicity: one bad key in the chosen branch, in the other branch, or in a
    // compare refuses the whole transaction before the first write.
    let mut harness = Harness::new();
    let bad_in_success = Transaction {
        compares: vec![],
        success: vec![put_op("/ok", b"1"), put_op("bad", b"1")],
        failure: vec![],
    };
    let bad_in_failure = Transaction {
        compares: vec![],
        success: vec![put_op("/ok", b"1")],
        failure: vec![TransactionOperation::Delete {
            key: "/x/..".into(),
        }],
    };
    let bad_compare = Transaction {
        compares: vec![version_is("nope", 0)],
        success: vec![put_op("/ok", b"1")],
        failure: vec![],
    };
    for transaction in [bad_in_success, bad_in_failure, bad_compare] {
        assert_eq!(
            error_code(harness.request(Operation::Transaction(transaction))),
            "invalid_key"
        );
    }
    assert_eq!(harness.value("/ok"), None);
    assert_eq!(harness.store.revision(), Revision::ZERO);
}

#[test]
fn transaction_compares_on_value_and_revisions() {
    // Proves the other compare targets, including how an absent key compares.
    let mut harness = Harness::new();
    harness.put("/a", b"m").unwrap();
    let check = |harness: &mut Harness, compare: Compare| -> bool {
        let transaction = Transaction {
            compares: vec![compare],
            ..Transaction::default()
        };
        match harness.request(Operation::Transaction(transaction)) {
            Ok(Outcome::Transaction { succeeded, .. }) => succeeded,
            other => panic!("unexpected {other:?}"),
        }
    };
    let compare = |key: &str, relation, target| Compare {
        key: key.into(),
        relation,
        target,
    };
    assert!(check(
        &mut harness,
        compare("/a", Relation::Equal, CompareTarget::Value(b"m".to_vec()))
    ));
    assert!(check(
        &mut harness,
        compare("/a", Relation::Greater, CompareTarget::Value(b"a".to_vec()))
    ));
    assert!(check(
        &mut harness,
        compare(
            "/a",
            Relation::Less,
            CompareTarget::ModifyRevision(Revision::new(2))
        )
    ));
    assert!(check(
        &mut harness,
        compare(
            "/a",
            Relation::Equal,
            CompareTarget::CreateRevision(Revision::new(1))
        )
    ));
    assert!(!check(
        &mut harness,
        compare("/none", Relation::Equal, CompareTarget::Value(vec![]))
    ));
    assert!(check(
        &mut harness,
        compare("/none", Relation::NotEqual, CompareTarget::Value(vec![]))
    ));
    assert!(check(
        &mut harness,
        compare("/none", Relation::Equal, CompareTarget::Version(0))
    ));
}

#[test]
fn transactions_over_the_operation_cap_are_refused() {
    // Proves the transaction size bound.
    let config = StoreConfig {
        transaction_operations_max: 2,
        ..StoreConfig::default()
    };
    let mut harness = Harness::with_config(config);
    let transaction = Transaction {
        compares: vec![version_is("/a", 0)],
        success: vec![put_op("/a", b"1"), put_op("/b", b"1")],
        failure: vec![],
    };
    assert_eq!(
        error_code(harness.request(Operation::Transaction(transaction))),
        "invalid_request"
    );
}
