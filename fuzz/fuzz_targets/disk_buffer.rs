//! The disk buffer's recovery path: a segment file with arbitrary contents (a crash
//! mid-write, a damaged disk) is opened, indexed and read back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tfo_agent::pipeline::disk::{DiskLog, DiskOptions};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = dir.path().join("sink");
    std::fs::create_dir(&sink).expect("mkdir");
    std::fs::write(sink.join(format!("{:020}.wal", 0)), data).expect("write");
    if data.len() >= 12 {
        std::fs::write(sink.join("acked"), &data[..12]).expect("write");
    }
    let opts = DiskOptions {
        dir: sink,
        max_bytes: 1 << 20,
        fsync: false,
    };
    let Ok((mut log, _)) = DiskLog::open(opts) else {
        return;
    };
    let mut from = log.acked();
    while let Some(r) = log.read_from(from) {
        from = match r {
            Ok((seq, _, bytes)) => {
                let _ = tfo_agent::pipeline::disk::decode_batch(&bytes);
                seq + 1
            }
            Err((seq, _)) => seq + 1,
        };
    }
    let _ = log.append(b"after", 1);
});
