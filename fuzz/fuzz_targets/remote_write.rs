//! The prometheus plugin's remote-write encoder (a hand-written protobuf writer with
//! unsafe buffer writes, issue 9) against the straightforward reference (`build` +
//! prost), on batches whose metric names, attribute keys and values come from the
//! input: any bytes (empty, NUL, non-ASCII, long, repeated, unsorted) must give the
//! same bytes as the reference, and never panic. One `Encoder` is reused across
//! inputs, as the sink reuses it across batches.
#![no_main]
use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tfo_plugin_api::{Batch, KeyValue, Metric};
use tfo_prometheus::encode::{convert, remote_write, Options};

thread_local! {
    static ENCODER: RefCell<remote_write::Encoder> = RefCell::new(remote_write::Encoder::default());
}

fuzz_target!(|data: &[u8]| {
    // Records separated by 0xFF; fields within a record by 0xFE: name, then
    // key/value pairs. Strings are the bytes as (lossy) UTF-8.
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut batch = Batch::default();
    for (i, rec) in data.split(|b| *b == 0xFF).take(64).enumerate() {
        let mut fields = rec.split(|b| *b == 0xFE);
        let name = text(fields.next().unwrap_or_default());
        let mut attrs = Vec::new();
        while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
            attrs.push(KeyValue::new(text(k), text(v)));
        }
        batch
            .metrics
            .push(Metric::gauge(name.as_str(), "", (i % 3) as u64, i as f64, attrs));
    }
    let families = convert(&batch, &Options::default()).families;
    let want = prost::Message::encode_to_vec(&remote_write::build(&families, 7));
    ENCODER.with(|e| {
        let mut out = Vec::new();
        e.borrow_mut().encode(&families, 7, &mut out);
        assert_eq!(out, want);
    });
});
