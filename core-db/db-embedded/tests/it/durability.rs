//! Kill -9 durability: a child process commits under concurrent write load
//! and prints each acknowledged commit; the parent SIGKILLs it mid-load,
//! reopens the store and finds every acknowledged commit.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use db::RetryPolicy;
use db_embedded::{EmbeddedDatabase, EmbeddedOptions};

const CHILD_ENV: &str = "MERIDIAN_KILL9_CHILD_DIR";
/// Acknowledgements to see before the kill.
const ACKS_BEFORE_KILL: usize = 2_000;
/// Bound on the whole run.
const DEADLINE: Duration = Duration::from_secs(120);

fn key(writer: u32, seq: u32) -> Vec<u8> {
    format!("ack/{writer:03}/{seq:08}").into_bytes()
}

/// The child's body, run only by `acknowledged_commits_survive_kill_9`
/// (as an ignored test it is not counted as a test of its own). Writes
/// until killed (or for at most `DEADLINE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the kill -9 child: run by acknowledged_commits_survive_kill_9"]
async fn kill9_child_writer() {
    let dir = std::env::var(CHILD_ENV).expect("run by the kill -9 test, which sets the store dir");
    let db =
        EmbeddedDatabase::open_database(&dir, EmbeddedOptions::default(), RetryPolicy::default())
            .expect("child opens the store");
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..16u32 {
        let db = db.clone();
        writers.push(tokio::spawn(async move {
            let mut seq = 0u32;
            while started.elapsed() < DEADLINE {
                let k = key(writer, seq);
                let value = format!("{writer}:{seq}");
                {
                    let (k, value) = (k.clone(), value.clone());
                    db.run(|tx, _| {
                        let (k, value) = (k.clone(), value.clone());
                        async move {
                            tx.set(&k, value.as_bytes())?;
                            tx.add_i64(b"acks", 1)
                        }
                    })
                    .await
                    .expect("child commit");
                }
                // Acknowledge only after the commit returned.
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {writer} {seq}").unwrap();
                out.flush().unwrap();
                seq += 1;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
}

#[tokio::test]
async fn acknowledged_commits_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability::kill9_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        let mut killer = Some(child);
        while let Some(Ok(line)) = lines.next() {
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let writer: u32 = parts.next().unwrap().parse().unwrap();
            let seq: u32 = parts.next().unwrap().parse().unwrap();
            acks.push((writer, seq));
            if acks.len() == ACKS_BEFORE_KILL
                && let Some(mut child) = killer.take()
            {
                // SIGKILL: no destructor, no flush, no journal sync runs.
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
        // Lines already in the pipe before the kill are acknowledgements too.
        (acks, killer)
    });
    let (acks, unkilled) = reader.join().unwrap();
    assert!(
        unkilled.is_none(),
        "child exited before {ACKS_BEFORE_KILL} acknowledgements"
    );
    assert!(acks.len() >= ACKS_BEFORE_KILL);

    let engine = EmbeddedDatabase::open(dir.path(), EmbeddedOptions::default())
        .expect("reopen after kill -9");
    let db = db::Database::new(std::sync::Arc::new(engine));
    let missing = db
        .run(|tx, _| {
            let acks = acks.clone();
            async move {
                let mut missing = Vec::new();
                for (writer, seq) in acks {
                    let got = tx.get_snapshot(&key(writer, seq)).await?;
                    if got.as_deref() != Some(format!("{writer}:{seq}").as_bytes()) {
                        missing.push((writer, seq));
                    }
                }
                let counter = tx.get_snapshot(b"acks").await?;
                // Every commit wrote one key and added one to the counter,
                // in one transaction: whatever survived, the two agree (a
                // torn commit group would leave them apart).
                let present = tx
                    .get_range_all(db::RangeOption::prefix(b"ack/"), true)
                    .await?
                    .len();
                Ok::<_, db::Error>((missing, counter, present))
            }
        })
        .await
        .unwrap();
    let (missing, counter, present) = missing;
    assert!(
        missing.is_empty(),
        "{} acknowledged commits lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let counter = i64::from_le_bytes(counter.unwrap().try_into().unwrap());
    assert_eq!(
        counter as usize, present,
        "the counter and the keys present disagree: a torn commit"
    );
    assert!(
        present >= acks.len(),
        "{present} keys < {} acks",
        acks.len()
    );
    // The store is writable after recovery.
    db.run(|tx, _| async move { tx.set(b"after", b"recovery") })
        .await
        .unwrap();
}
