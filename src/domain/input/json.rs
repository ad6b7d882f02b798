//! Reading JSON request bodies and socket payloads into typed fields: what a JSON client may
//! send for a type (an integral float for an integer) and errors that name the field.
use serde_json::Value;

use crate::error::{AppError, FieldError, Result};

/// Deserializes a request body or socket payload, naming the field that failed.
pub fn from_json<T: serde::de::DeserializeOwned>(mut value: Value) -> Result<T> {
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(value)
        .map_err(|e| deser_error(e.path().to_string(), e.into_inner().to_string()))
}

/// Reads a request body: a JSON object (serde would also read a struct from an array).
pub fn from_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| AppError::Validation {
        message: "Malformed JSON".into(),
        details: vec![FieldError::new("body", "is not valid JSON")],
    })?;
    if !value.is_object() {
        return Err(AppError::field("body", "must be a JSON object"));
    }
    from_json(value)
}

/// JSON has one number type: `41.0` is the integer 41 to JSON Schema (the document's
/// `integer`) and to the many encoders that write every number as a float, so an integral
/// float reads as that integer. A fraction (`41.5`) stays a float, which an integer field
/// refuses, naming itself.
fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) else {
                return;
            };
            // Both bounds are powers of two, so exact as floats; beyond them it stays a float.
            if (-(2f64.powi(63))..2f64.powi(63)).contains(&f) {
                *n = (f as i64).into();
            } else if (0.0..2f64.powi(64)).contains(&f) {
                *n = (f as u64).into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

fn deser_error(path: String, message: String) -> AppError {
    let message = message.split(" at line ").next().unwrap_or_default();
    let message = json_words(message);
    // serde reports a missing field at the parent's path, naming it in backticks.
    let field = match (path.as_str(), message.strip_prefix("missing field `")) {
        (".", Some(rest)) => rest.trim_end_matches('`').to_string(),
        (".", None) => "body".to_string(),
        _ => path,
    };
    AppError::field(field, message)
}

/// serde names the Rust type it wanted (`expected i32`); a client knows JSON's words.
fn json_words(message: &str) -> String {
    let words = [
        ("expected i32", "expected a whole number (32-bit)"),
        ("expected i64", "expected a whole number (64-bit)"),
        ("expected u32", "expected a whole number from 0 (32-bit)"),
        ("expected u64", "expected a whole number from 0 (64-bit)"),
    ];
    let replaced = words
        .iter()
        .find_map(|(rust, json)| Some(format!("{}{json}", message.strip_suffix(rust)?)));
    replaced.unwrap_or_else(|| message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integral_float_reads_as_an_integer_and_a_fraction_names_its_field() {
        #[derive(serde::Deserialize)]
        struct Versioned {
            version: i32,
        }
        let read = |body: &str| from_slice::<Versioned>(body.as_bytes());
        assert_eq!(read(r#"{"version": 41.0}"#).unwrap().version, 41);
        assert_eq!(read(r#"{"version": 4.1e1}"#).unwrap().version, 41);
        assert_eq!(read(r#"{"version": -0.0}"#).unwrap().version, 0);
        for bad in [r#"{"version": 41.5}"#, r#"{"version": 1e300}"#] {
            let AppError::Validation { details, .. } = read(bad).err().unwrap() else {
                panic!("{bad} is not a validation error");
            };
            assert_eq!(details[0].field, "version", "{bad}");
            assert!(details[0].message.contains("whole number"), "{details:?}");
            assert!(!details[0].message.contains("i32"), "{details:?}");
        }
    }
}
