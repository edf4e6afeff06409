//! Prints the create rate of both storage backends under 32 concurrent
//! writers: `cargo run -p apiserver --example storage_put_rate [creates]`.
//! Every create is durable before it is acknowledged (the embedded store
//! fsyncs each group commit; etcd fsyncs its WAL).

use std::sync::Arc;
use std::time::Instant;

use apiserver::storage::{EmbeddedStore, EtcdProcess, EtcdStore, Storage};
use bytes::Bytes;

const WRITERS: usize = 32;

async fn measure(name: &str, storage: Arc<dyn Storage>, total: usize) {
    let per_writer = total / WRITERS;
    let value = Bytes::from(vec![b'x'; 1024]);
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (storage, value) = (storage.clone(), value.clone());
            tokio::spawn(async move {
                for i in 0..per_writer {
                    let key = format!("/registry/pods/rate/w{w:02}-{i:06}");
                    storage.create(&key, value.clone()).await.expect("create");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let elapsed = started.elapsed();
    let done = per_writer * WRITERS;
    println!(
        "{name}: {done} creates of 1 KiB by {WRITERS} writers in {elapsed:.2?}: {:.0} creates/s",
        done as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let embedded = EmbeddedStore::open(dir.path()).expect("open the embedded store");
    measure("embedded", Arc::new(embedded), total).await;

    let etcd = EtcdProcess::start().expect("start etcd");
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .expect("connect to etcd");
    measure("etcd", Arc::new(store), total).await;
}
