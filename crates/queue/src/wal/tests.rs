//! Model tests of the log: what was acknowledged is replayed exactly once, in order, whatever
//! happens to the unacknowledged tail.

use super::*;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use std::time::Duration;

fn open(dir: &Path, seg: u64) -> (Wal, Vec<Vec<u8>>, ReplayReport) {
    let mut cfg = WalConfig::new(dir);
    cfg.segment_bytes = seg;
    let mut got = Vec::new();
    let (wal, report) = Wal::open(cfg, WalMetrics::default(), |v, p| {
        assert_eq!(v, RECORD_VERSION);
        got.push(p.to_vec());
    })
    .unwrap();
    (wal, got, report)
}

fn payload(i: u32, len: usize) -> Vec<u8> {
    let mut p = i.to_le_bytes().to_vec();
    p.resize(len.max(4), (i % 251) as u8);
    p
}

#[tokio::test]
async fn appends_replay_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, got, _) = open(dir.path(), 4096);
    assert!(got.is_empty());
    let mut want = Vec::new();
    for i in 0..200 {
        let p = payload(i, (i as usize * 37) % 700);
        wal.append(Bytes::from(p.clone())).await.unwrap();
        want.push(p);
    }
    wal.close().await;
    let (wal, got, report) = open(dir.path(), 4096);
    assert_eq!(got, want);
    assert!(report.segments > 5, "segments rotated: {report:?}");
    assert_eq!(report.truncated_segments, 0);
    wal.close().await;
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs_and_all_survive() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = WalMetrics::default();
    let (wal, _) = Wal::open(WalConfig::new(dir.path()), metrics.clone(), |_, _| {}).unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                wal.append(Bytes::from(payload(t * 1000 + i, 100)))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    wal.close().await;
    assert!(metrics.group_commits.get() <= 800);
    let (wal, got, _) = open(dir.path(), 128 << 20);
    assert_eq!(got.len(), 800);
    let mut ids: Vec<u32> = got
        .iter()
        .map(|p| u32::from_le_bytes(p[..4].try_into().unwrap()))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 800);
    wal.close().await;
}

/// Cut the last segment at every possible length and flip random bytes in its tail: replay keeps
/// exactly the records that lie wholly before the damage, truncates the rest, and the log keeps
/// working after.
#[tokio::test]
async fn torn_and_corrupt_tails_are_cut_at_the_last_intact_record() {
    let mut rng = SmallRng::seed_from_u64(7);
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open(dir.path(), 128 << 20);
        let mut want = Vec::new();
        let mut ends = Vec::new();
        let mut end = HEADER_LEN as usize;
        for i in 0..20 {
            let p = payload(i, rng.random_range(4..300));
            end += RECORD_HEADER_LEN + p.len();
            ends.push(end);
            wal.append(Bytes::from(p.clone())).await.unwrap();
            want.push(p);
        }
        wal.close().await;
        let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
        let mut data = fs::read(&path).unwrap();
        let cut = rng.random_range(HEADER_LEN as usize..data.len());
        if round % 2 == 0 {
            data.truncate(cut);
        } else {
            data[cut] ^= 0x5a;
        }
        fs::write(&path, &data).unwrap();
        let keep = ends.iter().filter(|e| **e <= cut).count();
        let keep = if round % 2 == 0 {
            keep
        } else {
            ends.iter().filter(|e| **e <= cut).count()
        };
        let (wal, got, report) = open(dir.path(), 128 << 20);
        assert_eq!(got, want[..keep].to_vec(), "round {round} cut {cut}");
        assert_eq!(report.truncated_segments, usize::from(keep < want.len()));
        wal.append(Bytes::from_static(b"after")).await.unwrap();
        wal.close().await;
        let (wal, got, report) = open(dir.path(), 128 << 20);
        assert_eq!(got.len(), keep + 1);
        assert_eq!(got.last().unwrap(), b"after");
        assert_eq!(report.truncated_segments, 0, "second replay is clean");
        wal.close().await;
    }
}

#[tokio::test]
async fn oversized_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = WalConfig::new(dir.path());
    cfg.max_record_bytes = 10;
    let (wal, _) = Wal::open(cfg, WalMetrics::default(), |_, _| {}).unwrap();
    assert!(matches!(
        wal.append(Bytes::from_static(&[0; 11])).await,
        Err(Error::RecordTooLarge { size: 11, max: 10 })
    ));
    wal.close().await;
}

#[tokio::test]
async fn truncation_removes_closed_segments_below_the_mark_only() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 256);
    for i in 0..20 {
        wal.append(Bytes::from(payload(i, 100))).await.unwrap();
    }
    let before = list_segments(dir.path()).unwrap().len();
    assert!(before > 3);
    let first = list_segments(dir.path()).unwrap()[0].0;
    assert_eq!(wal.remove_segments_below(first).unwrap(), 0);
    assert_eq!(wal.remove_segments_below(first + 1).unwrap(), 1);
    let removed = wal.remove_segments_below(u64::MAX).unwrap();
    assert_eq!(removed, before - 2, "all but the segment being written");
    // Rotation closes the current segment, which may then go too.
    let current = wal.current_segment();
    wal.rotate().await.unwrap();
    assert_eq!(wal.current_segment(), current + 1);
    assert_eq!(wal.remove_segments_below(u64::MAX).unwrap(), 1);
    wal.append(Bytes::from_static(b"still-writing"))
        .await
        .unwrap();
    wal.close().await;
    let (wal, got, _) = open(dir.path(), 256);
    assert_eq!(got, vec![b"still-writing".to_vec()]);
    wal.close().await;
}

/// Replay of arbitrary bytes after a valid header (and of arbitrary whole files) never panics,
/// never hands out a record whose CRC does not match, and leaves a log that accepts appends.
#[tokio::test]
async fn replay_survives_arbitrary_segment_bytes() {
    let mut rng = SmallRng::seed_from_u64(99);
    for round in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        let mut data = if round % 4 == 0 {
            Vec::new()
        } else {
            header().to_vec()
        };
        let n = rng.random_range(0..600);
        for _ in 0..n {
            data.push(rng.random());
        }
        if round % 3 == 0 && data.len() > 12 {
            // A plausible length field pointing past the end.
            data[8..12].copy_from_slice(&(rng.random_range(0..1000u32)).to_le_bytes());
        }
        fs::write(segment_path(dir.path(), 1), &data).unwrap();
        let (wal, _, report) = open(dir.path(), 1 << 20);
        assert!(report.records <= 1 + n as u64 / RECORD_HEADER_LEN as u64);
        wal.append(Bytes::from_static(b"ok")).await.unwrap();
        wal.close().await;
        let (wal, got, again) = open(dir.path(), 1 << 20);
        assert_eq!(got.last().unwrap(), b"ok");
        assert_eq!(
            again.truncated_segments, 0,
            "round {round}: the first replay left a clean log"
        );
        wal.close().await;
    }
}

#[tokio::test]
async fn offsets_grow_across_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 512);
    let mut last = Offset::ZERO;
    for i in 0..30 {
        let o = wal.append(Bytes::from(payload(i, 100))).await.unwrap();
        assert!(o > last || i == 0, "{o} after {last}");
        assert!(Queue::next_offset(&wal) > o);
        last = o;
    }
    wal.close().await;
    let (wal, _, _) = open(dir.path(), 512);
    let o = wal.append(Bytes::from_static(b"after")).await.unwrap();
    assert!(o > last, "{o} after a restart follows {last}");
    wal.close().await;
}

#[tokio::test]
async fn a_reader_tails_acknowledged_records_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 2048);
    let mut offsets = Vec::new();
    for i in 0..40 {
        offsets.push(wal.append(Bytes::from(payload(i, 150))).await.unwrap());
    }
    // From the middle, in small reads: every record once, in order, with its offset.
    let mut r = Queue::reader(&wal, offsets[17]).unwrap();
    let mut got = Vec::new();
    loop {
        let b = r.read(300).unwrap();
        if b.is_empty() {
            break;
        }
        got.extend(b);
    }
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        offsets[17..]
    );
    assert_eq!(got[0].payload.as_ref(), payload(17, 150).as_slice());
    // Caught up: a new append wakes the reader and is read next.
    let w = wal.clone();
    let t = tokio::spawn(async move { w.append(Bytes::from_static(b"new")).await.unwrap() });
    assert!(r.wait(Duration::from_secs(5)).await);
    let o = t.await.unwrap();
    let mut more = r.read(1 << 20).unwrap();
    if more.is_empty() {
        r.wait(Duration::from_secs(5)).await;
        more = r.read(1 << 20).unwrap();
    }
    assert_eq!(more.len(), 1);
    assert_eq!((more[0].offset, more[0].payload.as_ref()), (o, &b"new"[..]));
    assert_eq!(r.skipped(), 0);
    wal.close().await;
}

#[tokio::test]
async fn commits_persist_and_truncate_below_the_slowest_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 512);
    assert_eq!(wal.register("live-store").unwrap(), Offset::ZERO);
    assert_eq!(wal.register("metrics-generator").unwrap(), Offset::ZERO);
    let mut offsets = Vec::new();
    for i in 0..30 {
        offsets.push(wal.append(Bytes::from(payload(i, 100))).await.unwrap());
    }
    let segments = list_segments(dir.path()).unwrap().len();
    // One consumer done with everything: the other still holds every segment.
    let end = Queue::next_offset(&wal);
    assert_eq!(Queue::commit(&wal, "live-store", end).await.unwrap(), 0);
    assert_eq!(list_segments(dir.path()).unwrap().len(), segments);
    // The slower one half way: the segments wholly below its mark go.
    let half = offsets[15];
    let removed = Queue::commit(&wal, "metrics-generator", half)
        .await
        .unwrap();
    assert_eq!(removed as u64, half.segment() - offsets[0].segment());
    // A reader from below what was removed reports the gap and goes on.
    let mut r = Queue::reader(&wal, offsets[0].next()).unwrap();
    let got = r.read(1 << 20).unwrap();
    assert_eq!(got[0].offset.segment(), half.segment());
    assert!(r.skipped() > 0);
    // Both at the end: the segment being written is closed and removed too.
    Queue::commit(&wal, "metrics-generator", end).await.unwrap();
    assert_eq!(
        list_segments(dir.path()).unwrap().len(),
        1,
        "only a fresh segment"
    );
    wal.close().await;
    let (wal, got, _) = open(dir.path(), 512);
    assert!(got.is_empty());
    assert_eq!(wal.register("metrics-generator").unwrap(), end);
    assert_eq!(wal.register("live-store").unwrap(), end);
    wal.close().await;
}

/// Appends of every size around the 4 KiB blocks direct writes are aligned to (and one batch
/// larger than the staging buffer): the file holds exactly the records, the padding past each
/// write's end is gone once the segment is closed, and a copy taken while the segment is still
/// open — what a crash leaves — replays every acknowledged record with no damage reported.
#[tokio::test]
async fn direct_writes_keep_exactly_the_records_open_or_closed() {
    let shm = Path::new("/dev/shm");
    // The data dir on the usual file system (O_DIRECT), and on tmpfs where O_DIRECT is refused
    // and the log writes through the page cache.
    let mut dirs = vec![tempfile::tempdir().unwrap()];
    if shm.is_dir() {
        dirs.push(tempfile::tempdir_in(shm).unwrap());
    }
    for dir in dirs {
        let (wal, _, _) = open(dir.path(), 128 << 20);
        let mut want = Vec::new();
        let mut end = HEADER_LEN as usize;
        let sizes = (0..40)
            .map(|i| segment::BLOCK * (i % 3) + i * 97 % 4100)
            .chain([4096 - 9, 4096 - 8, 4096, 3 << 20]);
        for (i, len) in sizes.enumerate() {
            let p = payload(i as u32, len);
            end += RECORD_HEADER_LEN + p.len();
            wal.append(Bytes::from(p.clone())).await.unwrap();
            want.push(p);
        }
        let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
        let on_disk = fs::metadata(&path).unwrap().len() as usize;
        assert!(
            on_disk == end || on_disk == end.next_multiple_of(segment::BLOCK),
            "open segment: {on_disk} bytes for {end}"
        );
        let crashed = tempfile::tempdir().unwrap();
        for (_, p) in list_segments(dir.path()).unwrap() {
            fs::copy(&p, crashed.path().join(p.file_name().unwrap())).unwrap();
        }
        wal.close().await;
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, end);
        for d in [dir.path(), crashed.path()] {
            let (wal, got, report) = open(d, 128 << 20);
            assert_eq!(got, want, "{}", d.display());
            assert_eq!(report.truncated_segments, 0, "{report:?}");
            wal.close().await;
        }
    }
}

#[test]
fn padding_is_zeros_up_to_the_next_block_only() {
    assert!(segment::is_padding(4000, &[0; 96]));
    assert!(segment::is_padding(4097, &[0; 4095]));
    assert!(!segment::is_padding(4096, &[]));
    assert!(
        !segment::is_padding(4000, &[0; 95]),
        "not up to a block end"
    );
    assert!(
        !segment::is_padding(0, &[0; 4096]),
        "a whole block of zeros"
    );
    let mut bytes = [0; 96];
    bytes[50] = 1;
    assert!(!segment::is_padding(4000, &bytes));
}
