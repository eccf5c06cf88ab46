//! How a sink turns a backend's answer into the host's retry decision.

use tfo_plugin_api::PluginError;

/// Maps an HTTP answer: 2xx is success; 408, 429 and 5xx are worth retrying
/// (honouring `Retry-After`, in seconds); any other status will fail again.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Result<(), PluginError> {
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => {
            let e = PluginError::retryable(format!("HTTP {status}: {body}"));
            match retry_after.and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(secs) => Err(e.with_retry_after(secs.saturating_mul(1000))),
                None => Err(e),
            }
        }
        _ => Err(PluginError::permanent(format!("HTTP {status}: {body}"))),
    }
}
