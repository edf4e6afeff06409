//! The embedded store's reopening after a crash. A store is filled by
//! concurrent writers; its directory is copied the moment the writes stop
//! (a crash under load: the allocator state is not recorded) and again
//! after the writer's idle pause (a crash while idle), and each copy is
//! opened and timed, beside the reopening after a clean shutdown. `/readyz`
//! waits for this open, so the aim is `bench startup`'s: under a second.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apiserver::storage::{EmbeddedStore, Storage};
use bytes::Bytes;

use crate::report::{Row, millis, table};

const OPEN_AIM: Duration = Duration::from_secs(1);
/// Longer than the writer's wait before it records the allocator state.
const IDLE: Duration = Duration::from_secs(1);
/// A copy that takes longer may overlap the idle record's commit.
const COPY_LIMIT: Duration = Duration::from_millis(150);

#[derive(clap::Args)]
pub struct Args {
    /// Objects written before the crash.
    #[arg(long, default_value_t = 20_000)]
    objects: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Bytes per object: about a pod as the API server stores it.
    #[arg(long, default_value_t = 3_120)]
    bytes: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let live = dir.path().join("live");
    let store = EmbeddedStore::open(&live)?;
    fill(&store, &args).await?;
    let under_load = dir.path().join("under-load");
    copy_store(&live, &under_load)?;
    tokio::time::sleep(IDLE).await;
    let idle = dir.path().join("idle");
    copy_store(&live, &idle)?;
    drop(store);

    let size = std::fs::read_dir(&live)?
        .map(|entry| Ok(entry?.metadata()?.len()))
        .sum::<std::io::Result<u64>>()?;
    println!(
        "recovery benchmark: {} objects of {} B, {} concurrent writers, store file {:.1} MiB\n",
        args.objects,
        args.bytes,
        args.clients,
        size as f64 / (1 << 20) as f64
    );
    let mut rows = Vec::new();
    for (label, path) in [
        ("open after a clean shutdown", &live),
        ("open after a crash under load", &under_load),
        ("open after a crash while idle", &idle),
    ] {
        let opened = timed_open(path, args.objects).await?;
        rows.push(Row::aim(
            "embedded",
            label,
            millis(opened),
            format!("< {}", millis(OPEN_AIM)),
            opened < OPEN_AIM,
        ));
    }
    print!("{}", table(&rows));
    Ok(())
}

async fn fill(store: &EmbeddedStore, args: &Args) -> anyhow::Result<()> {
    let value = Bytes::from(format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(args.bytes.saturating_sub(10))
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..args.clients)
        .map(|_| {
            let (store, next, value, total) =
                (store.clone(), next.clone(), value.clone(), args.objects);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(());
                    }
                    store
                        .create(&format!("/registry/pods/default/p-{i:06}"), value.clone())
                        .await?;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    Ok(())
}

/// Copies the store's files while no write is in progress: the image a
/// crash at this moment leaves on disk.
fn copy_store(from: &Path, to: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    apiserver::testing::copy_store_files(from, to)
        .with_context(|| format!("copying {}", from.display()))?;
    if started.elapsed() > COPY_LIMIT {
        bail!(
            "copying the store took {}, which may overlap the writer's next commit",
            millis(started.elapsed())
        );
    }
    Ok(())
}

/// Opens the store at `path`, and checks that every write is there.
async fn timed_open(path: &Path, objects: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let store = EmbeddedStore::open(path)?;
    let opened = started.elapsed();
    let revision = store.current_revision().await?;
    let listed = store.list("/registry/pods/", None, 0, None).await?;
    if revision != objects as i64 || listed.kvs.len() != objects {
        bail!(
            "{}: revision {revision} and {} objects after reopening, expected {objects}",
            path.display(),
            listed.kvs.len()
        );
    }
    Ok(opened)
}
