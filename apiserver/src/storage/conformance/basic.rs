//! Conformance: single-key writes, their conditions, and paged lists.

use std::sync::Arc;

use super::bytes;
use crate::storage::{Storage, StorageError};

pub(super) async fn create_then_get_returns_the_value_and_a_second_create_fails(
    storage: Arc<dyn Storage>,
) {
    let key = "/registry/configmaps/default/a";
    assert_eq!(storage.get(key).await.expect("get"), None);
    let revision = storage.create(key, bytes("one")).await.expect("create");
    let kv = storage.get(key).await.expect("get").expect("present");
    assert_eq!(&kv.value[..], b"one");
    assert_eq!((kv.create_revision, kv.mod_revision), (revision, revision));
    assert_eq!(
        storage.current_revision().await.expect("revision"),
        revision
    );

    let error = storage
        .create(key, bytes("two"))
        .await
        .expect_err("second create");
    assert!(
        matches!(error, StorageError::AlreadyExists { ref key } if key == "/registry/configmaps/default/a")
    );
    let kv = storage.get(key).await.expect("get").expect("present");
    assert_eq!(&kv.value[..], b"one", "a refused create changes nothing");
    assert_eq!(
        storage.current_revision().await.expect("revision"),
        revision
    );
}

pub(super) async fn update_with_a_stale_revision_conflicts_and_carries_the_current_value(
    storage: Arc<dyn Storage>,
) {
    let key = "/registry/pods/default/web";
    let created = storage.create(key, bytes("v1")).await.expect("create");
    let updated = storage
        .update(key, bytes("v2"), created)
        .await
        .expect("update");
    assert!(updated > created);
    let kv = storage.get(key).await.expect("get").expect("present");
    assert_eq!(
        (&kv.value[..], kv.create_revision, kv.mod_revision),
        (&b"v2"[..], created, updated)
    );

    match storage.update(key, bytes("v3"), created).await {
        Err(StorageError::Conflict {
            expected, current, ..
        }) => {
            assert_eq!(expected, created);
            let current = current.expect("the current value");
            assert_eq!(
                (&current.value[..], current.mod_revision),
                (&b"v2"[..], updated)
            );
        }
        other => panic!("stale update: {other:?}"),
    }
    match storage
        .update("/registry/pods/default/absent", bytes("x"), 1)
        .await
    {
        Err(StorageError::NotFound { key }) => assert_eq!(key, "/registry/pods/default/absent"),
        other => panic!("update of an absent key: {other:?}"),
    }
    assert_eq!(storage.current_revision().await.expect("revision"), updated);
}

pub(super) async fn delete_is_conditional_on_the_revision(storage: Arc<dyn Storage>) {
    let key = "/registry/secrets/default/s";
    let created = storage.create(key, bytes("v1")).await.expect("create");
    let updated = storage
        .update(key, bytes("v2"), created)
        .await
        .expect("update");

    match storage.delete(key, Some(created)).await {
        Err(StorageError::Conflict { current, .. }) => {
            assert_eq!(current.expect("current").mod_revision, updated);
        }
        other => panic!("stale delete: {other:?}"),
    }
    let (prev, deleted) = storage.delete(key, Some(updated)).await.expect("delete");
    assert!(deleted > updated);
    assert_eq!((&prev.value[..], prev.mod_revision), (&b"v2"[..], updated));
    assert_eq!(storage.get(key).await.expect("get"), None);
    assert!(matches!(
        storage.delete(key, None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        storage.delete(key, Some(updated)).await,
        Err(StorageError::NotFound { .. })
    ));

    // Unconditional delete, and a create after a delete starts a new incarnation.
    let recreated = storage.create(key, bytes("v3")).await.expect("recreate");
    assert!(recreated > deleted);
    let (prev, _) = storage
        .delete(key, None)
        .await
        .expect("unconditional delete");
    assert_eq!(
        (prev.create_revision, prev.mod_revision),
        (recreated, recreated)
    );
}

pub(super) async fn list_pages_in_key_order_without_leaking_sibling_prefixes(
    storage: Arc<dyn Storage>,
) {
    // Created out of order, with neighbours on both sides of the prefix.
    let inside = [
        "/registry/pods/ns/c",
        "/registry/pods/ns/a",
        "/registry/pods/ns/e",
        "/registry/pods/ns/b",
        "/registry/pods/ns/d",
    ];
    let outside = [
        "/registry/podsx/ns/a",
        "/registry/pod/ns/a",
        "/registry/pods",
        "/registry/podtemplates/ns/a",
    ];
    for key in inside.iter().chain(&outside) {
        storage.create(key, bytes(key)).await.expect("create");
    }
    let all = storage
        .list("/registry/pods/", None, 0, None)
        .await
        .expect("list");
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/pods/ns/a",
            "/registry/pods/ns/b",
            "/registry/pods/ns/c",
            "/registry/pods/ns/d",
            "/registry/pods/ns/e"
        ]
    );
    assert_eq!(
        all.revision,
        storage.current_revision().await.expect("revision")
    );
    assert!(all.kvs.iter().all(|kv| kv.value == bytes(&kv.key)));

    // Pages of two, each continuing strictly after the last key of the previous.
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = storage
            .list("/registry/pods/", after.as_deref(), 2, Some(all.revision))
            .await
            .expect("page");
        assert_eq!(page.revision, all.revision);
        if page.kvs.is_empty() {
            break;
        }
        after = page.kvs.last().map(|kv| kv.key.clone());
        pages.push(page.kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>());
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), keys);

    let single = storage
        .list("/registry/pods/ns/c", None, 0, None)
        .await
        .expect("list of one key");
    assert_eq!(single.kvs.len(), 1);
    let everything = storage
        .list("", None, 0, None)
        .await
        .expect("list of all keys");
    assert_eq!(everything.kvs.len(), inside.len() + outside.len());
    let mut watch_all = storage
        .watch("", all.revision)
        .await
        .expect("watch all keys");
    let revision = storage.create("/zzz", bytes("last")).await.expect("create");
    assert_eq!(
        super::next_change(&mut watch_all).await.revision(),
        revision
    );
    let none = storage
        .list("/registry/nodes/", None, 0, None)
        .await
        .expect("empty list");
    assert!(none.kvs.is_empty());
}

/// 10,000 stored pods are 30 MB; gRPC clients refuse answers over 4 MiB
/// unless told otherwise (etcd's Go client allows 2 GiB).
pub(super) async fn a_list_larger_than_a_grpc_message_is_answered_whole(storage: Arc<dyn Storage>) {
    let value = bytes::Bytes::from(vec![b'x'; 1024 * 1024]);
    for i in 0..6 {
        storage
            .create(&format!("/registry/big/{i}"), value.clone())
            .await
            .expect("created");
    }
    let list = storage
        .list("/registry/big/", None, 0, None)
        .await
        .expect("listed");
    assert_eq!(list.kvs.len(), 6);
    assert!(list.kvs.iter().all(|kv| kv.value == value));
}

pub(super) async fn revisions_increase_strictly_across_keys(storage: Arc<dyn Storage>) {
    let mut last = storage.current_revision().await.expect("revision");
    for i in 0..10 {
        let key = format!("/registry/things/{}", i % 3);
        let revision = match storage.get(&key).await.expect("get") {
            None => storage.create(&key, bytes("x")).await.expect("create"),
            Some(kv) if i % 2 == 0 => storage
                .update(&key, bytes("y"), kv.mod_revision)
                .await
                .expect("update"),
            Some(kv) => {
                storage
                    .delete(&key, Some(kv.mod_revision))
                    .await
                    .expect("delete")
                    .1
            }
        };
        assert!(revision > last, "write {i}: {revision} after {last}");
        last = revision;
        assert_eq!(storage.current_revision().await.expect("revision"), last);
    }
}
