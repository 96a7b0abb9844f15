//! Case-insensitive struct decoding, as Go's `encoding/json` does it.
//!
//! Runtimes and users write keys like `"selinuxcontext"` or `"IsGateway"`, and
//! the reference plugins accept them because Go matches field names ignoring
//! case. This deserializer wraps a `serde_json::Value`; whenever serde asks for
//! a struct it renames each object key that matches a field only up to ASCII
//! case, so plain `#[derive(Deserialize)]` types behave the same way.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Decode `value` into `T`, matching struct keys case-insensitively
/// (an exact match wins over a case-folded one). Errors name the key path
/// (`ipam.ranges[0][1].subnet: ...`) so the operator knows what to fix.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_path_to_error::deserialize(Ci(value)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner
        } else {
            serde::de::Error::custom(format!("{path}: {inner}"))
        }
    })
}

struct Ci(Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for Ci {
    type Deserializer = Ci;
    fn into_deserializer(self) -> Ci {
        self
    }
}

fn canonical_keys(map: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    let mut out = Map::with_capacity(map.len());
    let mut folded = Vec::new();
    for (key, value) in map {
        if fields.contains(&key.as_str()) {
            out.insert(key, value);
        } else if let Some(field) = fields.iter().find(|f| f.eq_ignore_ascii_case(&key)) {
            folded.push((field.to_string(), value));
        } else {
            out.insert(key, value);
        }
    }
    for (field, value) in folded {
        out.entry(field).or_insert(value);
    }
    out
}

fn visit_object<'de, V: Visitor<'de>>(
    map: Map<String, Value>,
    visitor: V,
) -> Result<V::Value, serde_json::Error> {
    let mut access = MapDeserializer::new(map.into_iter().map(|(k, v)| (k, Ci(v))));
    let value = visitor.visit_map(&mut access)?;
    access.end()?;
    Ok(value)
}

impl<'de> Deserializer<'de> for Ci {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => {
                let mut access = SeqDeserializer::new(items.into_iter().map(Ci));
                let value = visitor.visit_seq(&mut access)?;
                access.end()?;
                Ok(value)
            }
            Value::Object(map) => visit_object(map, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visit_object(canonical_keys(map, fields), visitor),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        is_gateway: bool,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        selinux_context: Option<String>,
        inner: Vec<Inner>,
        #[serde(default)]
        map: std::collections::HashMap<String, Inner>,
    }

    #[test]
    fn keys_match_ignoring_case_at_every_depth() {
        let v = json!({"SELINUXCONTEXT": "x", "Inner": [{"isgateway": true}],
                       "map": {"a": {"IsGateway": false}}, "unknown": 1});
        let o: Outer = from_value(v).unwrap();
        assert_eq!(o.selinux_context.as_deref(), Some("x"));
        assert_eq!(o.inner, vec![Inner { is_gateway: true }]);
        assert_eq!(o.map["a"], Inner { is_gateway: false });
    }

    #[test]
    fn exact_key_wins_over_folded_one() {
        let v = json!({"selinuxContext": "exact", "SelinuxContext": "folded", "inner": []});
        let o: Outer = from_value(v).unwrap();
        assert_eq!(o.selinux_context.as_deref(), Some("exact"));
    }

    #[test]
    fn type_errors_name_the_key() {
        let v = json!({"inner": [{"isGateway": "yes"}]});
        let e = from_value::<Outer>(v).unwrap_err().to_string();
        assert!(e.starts_with("inner[0].isGateway: invalid type"), "{e}");
    }
}
