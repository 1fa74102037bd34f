//! Strict reading of one layer's JSON object: every field is looked up by name, every
//! problem is an error naming the layer index, its type and the field, and fields nobody
//! asked for are reported as unknown.

use crate::{bail, Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The largest value accepted for any size-like hyperparameter (channels, features,
/// kernel sizes, paddings, …). Nothing is allocated from a number above it.
pub const MAX_SIZE: usize = 1 << 24;

/// A layer's JSON object being read field by field.
pub(crate) struct Fields<'a> {
    index: usize,
    kind: &'a str,
    map: &'a Map<String, Value>,
    used: BTreeSet<&'a str>,
}

impl<'a> Fields<'a> {
    /// Wraps the object of layer `index` whose `"type"` is `kind`.
    pub(crate) fn new(index: usize, kind: &'a str, map: &'a Map<String, Value>) -> Self {
        let mut used = BTreeSet::new();
        used.insert("type");
        Fields {
            index,
            kind,
            map,
            used,
        }
    }

    /// An error about this layer (no field).
    pub(crate) fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::new(format!("layer {} ({}): {msg}", self.index, self.kind))
    }

    /// An error about one field of this layer.
    pub(crate) fn field_err(&self, field: &str, msg: impl std::fmt::Display) -> Error {
        Error::new(format!(
            "layer {} ({}): field \"{field}\": {msg}",
            self.index, self.kind
        ))
    }

    /// The raw value of a field, `None` when absent or null.
    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.used.insert(name);
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// The raw value of a field without marking it used, `None` when absent or null.
    pub(crate) fn raw(&self, name: &str) -> Option<&'a Value> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// An optional signed integer (`None` when absent or null), bounded by [`MAX_SIZE`].
    pub(crate) fn dim_or_null(&mut self, name: &'static str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(d) if d.unsigned_abs() <= MAX_SIZE as u64 => Ok(Some(d)),
                _ => Err(self.field_err(name, format!("expected an integer, got {v}"))),
            },
        }
    }

    fn to_size(&self, name: &str, v: &Value, min: usize) -> Result<usize> {
        let Some(n) = v.as_u64() else {
            return Err(self.field_err(name, format!("expected a non-negative integer, got {v}")));
        };
        if n > MAX_SIZE as u64 {
            return Err(self.field_err(name, format!("{n} is larger than the limit {MAX_SIZE}")));
        }
        let n = n as usize;
        if n < min {
            return Err(self.field_err(name, format!("{n} is less than {min}")));
        }
        Ok(n)
    }

    /// A required size ≥ `min`.
    pub(crate) fn size(&mut self, name: &'static str, min: usize) -> Result<usize> {
        match self.get(name) {
            Some(v) => self.to_size(name, v, min),
            None => Err(self.field_err(name, "missing")),
        }
    }

    /// An optional size ≥ `min` (`default` when absent or null).
    pub(crate) fn size_or(
        &mut self,
        name: &'static str,
        min: usize,
        default: usize,
    ) -> Result<usize> {
        match self.get(name) {
            Some(v) => self.to_size(name, v, min),
            None => Ok(default),
        }
    }

    /// A pair for a 2-d layer: `[a, b]` or a plain integer meaning `[n, n]`.
    /// `None` when absent or null.
    pub(crate) fn pair_opt(
        &mut self,
        name: &'static str,
        min: usize,
    ) -> Result<Option<[usize; 2]>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v {
            Value::Array(items) => {
                if items.len() != 2 {
                    return Err(self.field_err(
                        name,
                        format!("expected [a, b] (2 integers), got {} values", items.len()),
                    ));
                }
                Ok(Some([
                    self.to_size(name, &items[0], min)?,
                    self.to_size(name, &items[1], min)?,
                ]))
            }
            _ => {
                let n = self.to_size(name, v, min)?;
                Ok(Some([n, n]))
            }
        }
    }

    /// A required pair for a 2-d layer.
    pub(crate) fn pair(&mut self, name: &'static str, min: usize) -> Result<[usize; 2]> {
        match self.pair_opt(name, min)? {
            Some(p) => Ok(p),
            None => Err(self.field_err(name, "missing")),
        }
    }

    /// An optional pair with a default.
    pub(crate) fn pair_or(
        &mut self,
        name: &'static str,
        min: usize,
        default: [usize; 2],
    ) -> Result<[usize; 2]> {
        Ok(self.pair_opt(name, min)?.unwrap_or(default))
    }

    /// An integer for a 1-d layer; a one-element list `[n]` is accepted too, as PyTorch
    /// accepts 1-tuples. `None` when absent or null.
    pub(crate) fn single_opt(&mut self, name: &'static str, min: usize) -> Result<Option<usize>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v {
            Value::Array(items) if items.len() == 1 => {
                Ok(Some(self.to_size(name, &items[0], min)?))
            }
            Value::Array(items) => Err(self.field_err(
                name,
                format!(
                    "expected an integer for a 1-d layer, got {} values",
                    items.len()
                ),
            )),
            _ => Ok(Some(self.to_size(name, v, min)?)),
        }
    }

    /// A required integer for a 1-d layer.
    pub(crate) fn single(&mut self, name: &'static str, min: usize) -> Result<usize> {
        match self.single_opt(name, min)? {
            Some(n) => Ok(n),
            None => Err(self.field_err(name, "missing")),
        }
    }

    /// An optional boolean with a default.
    pub(crate) fn bool_or(&mut self, name: &'static str, default: bool) -> Result<bool> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.field_err(name, format!("expected true or false, got {v}"))),
        }
    }

    /// An optional finite number with a default.
    pub(crate) fn f64_or(&mut self, name: &'static str, default: f64) -> Result<f64> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(x),
                _ => Err(self.field_err(name, format!("expected a finite number, got {v}"))),
            },
        }
    }

    /// A required signed integer (a dimension that may be negative).
    pub(crate) fn dim(&mut self, name: &'static str) -> Result<i64> {
        match self.get(name) {
            None => Err(self.field_err(name, "missing")),
            Some(v) => self.to_dim(name, v),
        }
    }

    /// An optional signed integer with a default.
    pub(crate) fn dim_or(&mut self, name: &'static str, default: i64) -> Result<i64> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => self.to_dim(name, v),
        }
    }

    fn to_dim(&self, name: &str, v: &Value) -> Result<i64> {
        match v.as_i64() {
            Some(d) if d.unsigned_abs() <= 64 => Ok(d),
            _ => Err(self.field_err(name, format!("expected a small integer dimension, got {v}"))),
        }
    }

    /// A required list of non-negative integers (at most 64 of them).
    pub(crate) fn dims_list(&mut self, name: &'static str) -> Result<Vec<usize>> {
        let Some(v) = self.get(name) else {
            return Err(self.field_err(name, "missing"));
        };
        let Some(items) = v.as_array() else {
            return Err(self.field_err(name, format!("expected a list of integers, got {v}")));
        };
        if items.len() > 64 {
            return Err(self.field_err(name, format!("{} dimensions is too many", items.len())));
        }
        items
            .iter()
            .map(|d| match d.as_u64() {
                Some(n) if n <= 64 => Ok(n as usize),
                _ => Err(self.field_err(name, format!("expected a dimension index, got {d}"))),
            })
            .collect()
    }

    /// An optional string field (`None` when absent or null).
    pub(crate) fn str_opt(&mut self, name: &'static str) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.field_err(name, format!("expected a string, got {v}"))),
        }
    }

    /// The string value of a field when it is a string; leaves other values for the
    /// numeric getters (and marks the field as used either way).
    pub(crate) fn str_opt_peek(&mut self, name: &'static str) -> Result<Option<&'a str>> {
        self.ignore(name);
        match self.raw(name) {
            Some(Value::String(_)) => self.str_opt(name),
            _ => Ok(None),
        }
    }

    /// Requires a field to be absent or null (PyTorch options mho does not implement).
    pub(crate) fn must_be_null(&mut self, name: &'static str, why: &str) -> Result<()> {
        if let Some(v) = self.get(name) {
            return Err(self.field_err(name, format!("{v} is not supported ({why})")));
        }
        Ok(())
    }

    /// Requires a boolean field to be absent or equal to `expected`.
    pub(crate) fn bool_must_be(
        &mut self,
        name: &'static str,
        expected: bool,
        why: &str,
    ) -> Result<()> {
        if self.bool_or(name, expected)? != expected {
            return Err(self.field_err(name, format!("{} is not supported ({why})", !expected)));
        }
        Ok(())
    }

    /// Accepts and ignores a field that does not change the computation (e.g. `inplace`).
    pub(crate) fn ignore(&mut self, name: &'static str) {
        self.used.insert(name);
    }

    /// Errors on the first field that no getter asked for.
    pub(crate) fn finish(self) -> Result<()> {
        for key in self.map.keys() {
            if !self.used.contains(key.as_str()) {
                bail!(
                    "layer {} ({}): unknown field \"{key}\"",
                    self.index,
                    self.kind
                );
            }
        }
        Ok(())
    }
}
