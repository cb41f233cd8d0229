//! `db.bulk_insert(table, columns, #{ each, values })`: rows generated natively from a
//! description, for tables whose rows follow a rule (every amplifier of every detector,
//! a numbered series) — no interpreted loop per row, nothing held but the current row.
//!
//! ```rhai
//! db.bulk_insert("amplifier", ["instrument", "detector", "name"], #{
//!     each: #{ detector: 0..100, amp: ["A", "B", "C", "D"] },
//!     values: [#{ template: "HSC" }, "detector", #{ template: "{amp}{detector}" }],
//! });
//! ```
//!
//! `each` names ranges (`a..b`, `a..=b`) and arrays; the rows are their cross product,
//! the names in alphabetical order with the first varying slowest. `values` are as in
//! `db.insert_derived`, over the names of `each`.

use rhai::{Array, Dynamic, Map};

use super::derive::{derivation, derive_row, Derivation};
use super::values::to_value;
use crate::backend::Value;

/// One dimension of the cross product.
enum Axis {
    Range { start: i64, len: u64 },
    List(Vec<Value>),
}

impl Axis {
    fn len(&self) -> u64 {
        match self {
            Axis::Range { len, .. } => *len,
            Axis::List(v) => v.len() as u64,
        }
    }

    fn get(&self, k: u64) -> Value {
        match self {
            Axis::Range { start, .. } => Value::Int(start + k as i64),
            Axis::List(v) => v[k as usize].clone(),
        }
    }

    fn parse(name: &str, d: &Dynamic) -> Result<Axis, String> {
        if let Some(r) = d.clone().try_cast::<std::ops::Range<i64>>() {
            let len = r.end.saturating_sub(r.start).max(0) as u64;
            return Ok(Axis::Range {
                start: r.start,
                len,
            });
        }
        if let Some(r) = d.clone().try_cast::<std::ops::RangeInclusive<i64>>() {
            let len = (r.end() - r.start() + 1).max(0) as u64;
            return Ok(Axis::Range {
                start: *r.start(),
                len,
            });
        }
        if let Some(a) = d.clone().try_cast::<Array>() {
            let values = a
                .iter()
                .map(to_value)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("each.{name}: {e}"))?;
            return Ok(Axis::List(values));
        }
        Err(format!(
            "each.{name} must be a range (a..b, a..=b) or an array, found {}",
            d.type_name()
        ))
    }
}

/// The rows of a generator spec, one at a time.
pub struct Rows {
    axes: Vec<Axis>,
    plan: Vec<Derivation>,
    /// The position in the cross product (`None` when done).
    at: Option<Vec<u64>>,
    base: Vec<Value>,
    name: String,
}

impl Rows {
    /// Reads `#{ each, values }` for `width` target columns.
    pub fn new(spec: &Map, width: usize) -> Result<Rows, String> {
        let each = spec
            .get("each")
            .and_then(|v| v.clone().try_cast::<Map>())
            .ok_or("a generated bulk insert needs `each` (a map of ranges or arrays)")?;
        let values = spec
            .get("values")
            .and_then(|v| v.clone().try_cast::<Array>())
            .ok_or("a generated bulk insert needs `values` (one per column)")?;
        if values.len() != width {
            return Err(format!("{} values for {width} columns", values.len()));
        }
        let names: Vec<String> = each.keys().map(|k| k.to_string()).collect();
        let axes = each
            .iter()
            .map(|(k, v)| Axis::parse(k, v))
            .collect::<Result<Vec<_>, _>>()?;
        let plan = values
            .iter()
            .map(|v| derivation(v, &names))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.replace("the source query", "`each`"))?;
        let empty = axes.is_empty() || axes.iter().any(|a| a.len() == 0);
        Ok(Rows {
            at: (!empty).then(|| vec![0; axes.len()]),
            axes,
            plan,
            base: Vec::new(),
            name: String::new(),
        })
    }
}

impl Iterator for Rows {
    type Item = Vec<Value>;

    fn next(&mut self) -> Option<Vec<Value>> {
        let at = self.at.as_mut()?;
        self.base.clear();
        self.base
            .extend(self.axes.iter().zip(at.iter()).map(|(a, k)| a.get(*k)));
        // Advance the odometer: the last axis fastest.
        let mut i = at.len();
        let done = loop {
            if i == 0 {
                break true;
            }
            i -= 1;
            at[i] += 1;
            if at[i] < self.axes[i].len() {
                break false;
            }
            at[i] = 0;
        };
        if done {
            self.at = None;
        }
        let mut out = Vec::with_capacity(self.plan.len());
        derive_row(&self.plan, &self.base, &mut self.name, &mut out);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(each: Map, values: Array) -> Map {
        let mut m = Map::new();
        m.insert("each".into(), Dynamic::from_map(each));
        m.insert("values".into(), Dynamic::from_array(values));
        m
    }

    #[test]
    fn cross_product_in_name_order_with_templates_and_constants() {
        let mut each = Map::new();
        each.insert("detector".into(), Dynamic::from(0i64..2));
        each.insert(
            "amp".into(),
            Dynamic::from_array(vec!["A".into(), "B".into()]),
        );
        let mut template = Map::new();
        template.insert("template".into(), "{amp}{detector}".into());
        let values = vec![
            Dynamic::from("detector"),
            Dynamic::from_map(template),
            Dynamic::from(1.5f64),
        ];
        let rows = Rows::new(&spec(each, values), 3).unwrap();
        let names: Vec<Value> = rows.map(|r| r[1].clone()).collect();
        assert_eq!(
            names,
            ["A0", "A1", "B0", "B1"]
                .iter()
                .map(|s| Value::Text(s.to_string()))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn empty_ranges_make_no_rows_and_bad_specs_say_why() {
        let mut each = Map::new();
        each.insert("i".into(), Dynamic::from(5i64..5));
        let rows = Rows::new(&spec(each.clone(), vec![Dynamic::from("i")]), 1).unwrap();
        assert_eq!(rows.count(), 0);
        let err = Rows::new(&spec(each.clone(), vec![Dynamic::from("j")]), 1)
            .err()
            .unwrap();
        assert!(err.contains("`each`"), "{err}");
        each.insert("k".into(), Dynamic::from("text"));
        let err = Rows::new(&spec(each, vec![Dynamic::from("i")]), 1)
            .err()
            .unwrap();
        assert!(err.contains("each.k must be a range"), "{err}");
    }
}
