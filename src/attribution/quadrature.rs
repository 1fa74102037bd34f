//! Quadrature rules on [0, 1] for path integrals: nodes α_k and weights w_k with Σ w_k = 1.
//!
//! Riemann rules follow Captum's node placement; unlike Captum 0.9, `riemann-trapezoid`
//! uses the true trapezoid weights 1/(n−1) with halved ends (Captum's sum to (n−1)/n).
//! Gauss–Legendre nodes and weights are computed here in f64 for any n (Newton's method
//! on the Legendre polynomial), mapped from [−1, 1] to [0, 1].

use crate::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// A quadrature rule for ∫₀¹ g(α) dα.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Nodes k/n, weights 1/n.
    RiemannLeft,
    /// Nodes (k+1)/n, weights 1/n.
    RiemannRight,
    /// Nodes (k+½)/n, weights 1/n.
    RiemannMiddle,
    /// Nodes linspace(0, 1, n), weights 1/(n−1) with the two ends halved (n ≥ 2).
    RiemannTrapezoid,
    /// n-point Gauss–Legendre on [0, 1].
    GaussLegendre,
}

impl Rule {
    /// Every rule, in the order of the docs.
    pub const ALL: [Rule; 5] = [
        Rule::RiemannLeft,
        Rule::RiemannRight,
        Rule::RiemannMiddle,
        Rule::RiemannTrapezoid,
        Rule::GaussLegendre,
    ];

    /// The rule's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rule::RiemannLeft => "riemann-left",
            Rule::RiemannRight => "riemann-right",
            Rule::RiemannMiddle => "riemann-middle",
            Rule::RiemannTrapezoid => "riemann-trapezoid",
            Rule::GaussLegendre => "gauss-legendre",
        }
    }

    /// The fewest steps the rule accepts.
    pub fn min_steps(self) -> usize {
        match self {
            Rule::RiemannTrapezoid => 2,
            _ => 1,
        }
    }

    /// The rule's n nodes (ascending) and weights (summing to 1).
    pub fn nodes_weights(self, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        if n < self.min_steps() {
            bail!(
                "--steps: rule {} needs at least {} steps, got {n}",
                self.name(),
                self.min_steps()
            );
        }
        let nf = n as f64;
        Ok(match self {
            Rule::RiemannLeft => ((0..n).map(|k| k as f64 / nf).collect(), vec![1.0 / nf; n]),
            Rule::RiemannRight => (
                (0..n).map(|k| (k + 1) as f64 / nf).collect(),
                vec![1.0 / nf; n],
            ),
            Rule::RiemannMiddle => (
                (0..n).map(|k| (k as f64 + 0.5) / nf).collect(),
                vec![1.0 / nf; n],
            ),
            Rule::RiemannTrapezoid => {
                let h = 1.0 / (nf - 1.0);
                let nodes = (0..n)
                    .map(|k| if k + 1 == n { 1.0 } else { k as f64 * h })
                    .collect();
                let mut w = vec![h; n];
                w[0] = h / 2.0;
                w[n - 1] = h / 2.0;
                (nodes, w)
            }
            Rule::GaussLegendre => gauss_legendre(n),
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rule {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                crate::Error::new(format!(
                    "--rule: unknown rule '{s}' (expected one of riemann-left, riemann-right, riemann-middle, riemann-trapezoid, gauss-legendre, exact)"
                ))
            })
    }
}

/// The n-point Gauss–Legendre rule on [0, 1]: ascending nodes and weights (Σ = 1).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        // Initial guess for the i-th largest root of P_n (Tricomi), refined by Newton.
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (p, d) = legendre_and_derivative(n, x);
            dp = d;
            let dx = p / d;
            x -= dx;
            if dx.abs() <= 1e-16 * x.abs().max(1.0) {
                let (_, d) = legendre_and_derivative(n, x);
                dp = d;
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        // Roots come in ± pairs; map [−1, 1] → [0, 1] and halve the weights.
        nodes[i] = (1.0 - x) / 2.0;
        nodes[n - 1 - i] = (1.0 + x) / 2.0;
        weights[i] = w / 2.0;
        weights[n - 1 - i] = w / 2.0;
    }
    (nodes, weights)
}

/// P_n(x) and P_n'(x) by the three-term recurrence.
fn legendre_and_derivative(n: usize, x: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let kf = k as f64;
        let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
        p0 = p1;
        p1 = p2;
    }
    let nf = n as f64;
    let d = nf * (x * p1 - p0) / (x * x - 1.0);
    (p1, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_for_every_rule() {
        for rule in Rule::ALL {
            for n in [2, 3, 7, 50, 201] {
                let (a, w) = rule.nodes_weights(n).unwrap();
                assert_eq!(a.len(), n);
                let s: f64 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-13, "{rule} n={n} sum={s}");
                assert!(a.windows(2).all(|p| p[0] < p[1]), "{rule} nodes ascending");
                assert!(a.iter().all(|&x| (0.0..=1.0).contains(&x)));
            }
        }
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_of_degree_2n_minus_1_exactly() {
        for n in 1..=30 {
            let (a, w) = gauss_legendre(n);
            for deg in 0..2 * n {
                let q: f64 = a.iter().zip(&w).map(|(x, w)| w * x.powi(deg as i32)).sum();
                let exact = 1.0 / (deg as f64 + 1.0);
                assert!((q - exact).abs() < 1e-13, "n={n} deg={deg} q={q}");
            }
        }
    }

    #[test]
    fn gauss_legendre_matches_known_three_point_rule() {
        let (a, w) = gauss_legendre(3);
        let r = (0.6f64).sqrt() / 2.0;
        assert!((a[0] - (0.5 - r)).abs() < 1e-15 && (a[2] - (0.5 + r)).abs() < 1e-15);
        assert!((a[1] - 0.5).abs() < 1e-15);
        assert!((w[0] - 5.0 / 18.0).abs() < 1e-15 && (w[1] - 8.0 / 18.0).abs() < 1e-15);
    }

    #[test]
    fn trapezoid_is_exact_on_linear_functions_and_rejects_one_step() {
        let (a, w) = Rule::RiemannTrapezoid.nodes_weights(5).unwrap();
        let q: f64 = a.iter().zip(&w).map(|(x, w)| w * (3.0 * x + 1.0)).sum();
        assert!((q - 2.5).abs() < 1e-15);
        assert!(Rule::RiemannTrapezoid.nodes_weights(1).is_err());
        assert!(Rule::GaussLegendre.nodes_weights(0).is_err());
    }

    #[test]
    fn parses_names() {
        for rule in Rule::ALL {
            assert_eq!(rule.name().parse::<Rule>().unwrap(), rule);
        }
        assert!("simpson".parse::<Rule>().is_err());
    }
}
