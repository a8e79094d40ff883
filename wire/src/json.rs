//! ntopng's JSON flow form (docs/ntopng-zmq.md §2.6, §3.5): an array of objects
//! with decimal field ids as keys. Only ntopng builds with Pro code read JSON flows;
//! it is also the only form that carries the nested agent objects (container name,
//! Kubernetes pod and namespace).

use serde_json::{Map, Number, Value as Json};

use crate::tlv::Value;

/// One flow object: `fields` under their decimal ids, then `nested` objects under
/// their names (e.g. `SRC_CONTAINER`).
#[must_use]
pub fn flow_object(fields: &[(u32, Value)], nested: &[(String, Json)]) -> Json {
    let mut object = Map::new();
    for (id, value) in fields {
        let json = match value {
            Value::Uint(v) => Json::Number((*v).into()),
            Value::Int(v) => Json::Number((*v).into()),
            Value::Float(v) => Number::from_f64(f64::from(*v)).map_or(Json::Null, Json::Number),
            Value::Str(v) => Json::String(v.clone()),
        };
        object.insert(id.to_string(), json);
    }
    for (name, value) in nested {
        object.insert(name.clone(), value.clone());
    }
    Json::Object(object)
}

/// A JSON array payload of flow objects.
///
/// # Panics
/// Never: a `serde_json::Value` always serializes.
#[must_use]
pub fn payload(objects: Vec<Json>) -> Vec<u8> {
    serde_json::to_vec(&Json::Array(objects)).expect("JSON values always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decimal_ids_and_nested_objects_keep_their_names() {
        let object = flow_object(
            &[(8, Value::Str("10.0.0.1".into())), (7, Value::Uint(51000)), (57595, Value::Float(1.5))],
            &[("SRC_CONTAINER".into(), serde_json::json!({"ID": "abc", "K8S": {"POD": "api-1", "NS": "prod"}}))],
        );
        assert_eq!(object["8"], "10.0.0.1");
        assert_eq!(object["7"], 51000);
        assert_eq!(object["57595"], 1.5);
        assert_eq!(object["SRC_CONTAINER"]["K8S"]["NS"], "prod");
        let bytes = payload(vec![object]);
        assert!(bytes.starts_with(b"[{") && bytes.ends_with(b"}]"));
    }
}
