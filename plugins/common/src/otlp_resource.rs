//! Attributes an OTLP sink adds to the resource of each request it sends: the
//! configured `service.name` and tags, each only when the batch's resource lacks
//! that key (data from an application wins over agent configuration).
//!
//! Why it is shared: OTLP backends (Instana's acceptor, ManageEngine Site24x7)
//! group data by `service.name` and show resource attributes as tags, so OTLP sinks
//! offer the same `service_name` and `tags` options with the same precedence; the
//! rule lives here once instead of in each plugin's encoder.

use opentelemetry_proto::tonic::{
    common::v1::{any_value, AnyValue as OtlpAnyValue, KeyValue as OtlpKeyValue},
    resource::v1::Resource as OtlpResource,
};

/// What the encoder adds to each resource: `service.name` and tags, each only
/// when the batch's resource lacks that key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceExtras {
    /// `(key, value)` pairs in order.
    pub attributes: Vec<(String, String)>,
}

impl ResourceExtras {
    /// From the config's `service_name` and `tags` (a `service.name` tag does not
    /// override `service_name`).
    pub fn new<'a>(
        service_name: Option<&str>,
        tags: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        let mut attributes = Vec::new();
        if let Some(s) = service_name {
            attributes.push(("service.name".to_string(), s.to_string()));
        }
        for (k, v) in tags {
            if !attributes.iter().any(|(x, _)| x == k) {
                attributes.push((k.clone(), v.clone()));
            }
        }
        ResourceExtras { attributes }
    }

    /// Adds the attributes the resource lacks (creating the resource if absent).
    pub fn apply(&self, resource: &mut Option<OtlpResource>) {
        let r = resource.get_or_insert_with(Default::default);
        for (k, v) in &self.attributes {
            if !r.attributes.iter().any(|kv| &kv.key == k) {
                r.attributes.push(OtlpKeyValue {
                    key: k.clone(),
                    value: Some(OtlpAnyValue {
                        value: Some(any_value::Value::StringValue(v.clone())),
                    }),
                    ..Default::default()
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_only_missing_keys_in_order() {
        let tags = [
            ("env".to_string(), "prod".to_string()),
            ("service.name".to_string(), "ignored".to_string()),
        ];
        let x = ResourceExtras::new(Some("agent"), tags.iter().map(|(k, v)| (k, v)));
        let mut r = Some(OtlpResource {
            attributes: vec![OtlpKeyValue {
                key: "env".into(),
                value: None,
                ..Default::default()
            }],
            ..Default::default()
        });
        x.apply(&mut r);
        let keys: Vec<&str> = r
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(keys, ["env", "service.name"]);
        let mut none = None;
        x.apply(&mut none);
        assert_eq!(none.unwrap().attributes.len(), 2);
    }
}
