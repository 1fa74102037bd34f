//! The result of an attribution run and its JSON form (a contract: extend, don't change).

use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Attributions of one run, in f64 whatever the precision computed in.
#[derive(Clone, Debug)]
pub struct Report {
    /// The method's command-line name.
    pub method: String,
    /// The rule's command-line name.
    pub rule: String,
    /// The number of quadrature steps (0 for methods without a path).
    pub steps: usize,
    /// The target output index.
    pub target: usize,
    /// "f32" or "f64".
    pub precision: String,
    /// F(x) per example.
    pub outputs_input: Vec<f64>,
    /// F(x') per example.
    pub outputs_baseline: Vec<f64>,
    /// Attributions by name ("input", a layer index, or "LAYER:I,J,K"), in order.
    pub attributions: Vec<(String, Tensor<f64>)>,
    /// Per name, per example: Σ attributions − (F(x) − F(x')).
    pub delta: Vec<(String, Vec<f64>)>,
    /// Per example, the number of linear pieces of the path found by the exact rule.
    pub pieces: Option<Vec<usize>>,
    /// The number of gradient evaluations (network rows run backward) in all; under the
    /// exact rule by events, the passes down the network at the ends of the path's stretches
    /// (one per example, two for a lone example).
    pub gradient_evaluations: usize,
}

impl Report {
    /// The attributions stored under `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<f64>> {
        self.attributions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    /// The deltas stored under `name`.
    pub fn delta_of(&self, name: &str) -> Option<&[f64]> {
        self.delta
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_slice())
    }

    /// The JSON document of the `attribute` command.
    pub fn to_json(&self) -> Value {
        let mut attributions = Map::new();
        for (name, t) in &self.attributions {
            attributions.insert(name.clone(), json!({"shape": t.shape(), "data": t.data()}));
        }
        let mut delta = Map::new();
        for (name, d) in &self.delta {
            delta.insert(name.clone(), json!(d));
        }
        let mut doc = json!({
            "method": self.method,
            "rule": self.rule,
            "steps": self.steps,
            "target": self.target,
            "precision": self.precision,
            "outputs": {"input": self.outputs_input, "baseline": self.outputs_baseline},
            "attributions": attributions,
            "delta": delta,
            "gradient_evaluations": self.gradient_evaluations,
        });
        if let Some(p) = &self.pieces {
            doc["pieces"] = json!(p);
        }
        doc
    }
}
