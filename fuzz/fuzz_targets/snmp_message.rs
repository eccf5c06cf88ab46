//! The SNMP plugin's receive path: every datagram from the network goes through
//! `decode_community` (v1/v2c) or `decode_v3` before anything else looks at it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tfo_snmp::message::decode_community(data);
    let _ = tfo_snmp::message::decode_v3(data);
});
