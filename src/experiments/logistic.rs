//! Binary logistic regression, fitted in f64 by Newton's method (IRLS) with a small ridge
//! penalty on standardised features: deterministic, no learning rate to tune.

use crate::{ensure, Result};

/// A fitted model: standardisation, weights and intercept.
#[derive(Clone, Debug)]
pub struct Logistic {
    mean: Vec<f64>,
    scale: Vec<f64>,
    weights: Vec<f64>,
    intercept: f64,
}

/// Solves A·x = b (A symmetric positive definite, row-major k×k) by Cholesky.
fn solve_spd(a: &[f64], b: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let s: f64 = a[i * k + j] - (0..j).map(|p| l[i * k + p] * l[j * k + p]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    let mut y = vec![0.0; k];
    for i in 0..k {
        y[i] = (b[i] - (0..i).map(|p| l[i * k + p] * y[p]).sum::<f64>()) / l[i * k + i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        x[i] = (y[i] - (i + 1..k).map(|p| l[p * k + i] * x[p]).sum::<f64>()) / l[i * k + i];
    }
    Some(x)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Logistic {
    /// Fits on rows `x` ([n][d]) with labels `y` (true = positive); `ridge` penalises the
    /// weights (not the intercept) on standardised features.
    pub fn fit(x: &[Vec<f64>], y: &[bool], ridge: f64) -> Result<Logistic> {
        let n = x.len();
        ensure!(
            n >= 2 && n == y.len(),
            "logistic regression: {n} rows, {} labels",
            y.len()
        );
        let d = x[0].len();
        ensure!(
            x.iter().all(|r| r.len() == d),
            "logistic regression: ragged features"
        );
        let mean: Vec<f64> = (0..d)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let v = x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
                if v > 0.0 {
                    v.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                let mut v = Vec::with_capacity(d + 1);
                v.push(1.0);
                v.extend(
                    r.iter()
                        .zip(&mean)
                        .zip(&scale)
                        .map(|((a, m), s)| (a - m) / s),
                );
                v
            })
            .collect();
        let k = d + 1;
        let mut w = vec![0.0; k];
        for _ in 0..100 {
            let mut grad = vec![0.0; k];
            let mut hess = vec![0.0; k * k];
            for (zi, &yi) in z.iter().zip(y) {
                let p = sigmoid(zi.iter().zip(&w).map(|(a, b)| a * b).sum());
                let r = p - if yi { 1.0 } else { 0.0 };
                let s = (p * (1.0 - p)).max(1e-12);
                for a in 0..k {
                    grad[a] += r * zi[a];
                    for b in 0..=a {
                        hess[a * k + b] += s * zi[a] * zi[b];
                    }
                }
            }
            for a in 1..k {
                grad[a] += ridge * w[a];
                hess[a * k + a] += ridge;
            }
            for a in 0..k {
                for b in 0..a {
                    hess[b * k + a] = hess[a * k + b];
                }
            }
            let Some(step) = solve_spd(&hess, &grad, k) else {
                break;
            };
            let mut max_step: f64 = 0.0;
            for (wi, si) in w.iter_mut().zip(&step) {
                *wi -= si;
                max_step = max_step.max(si.abs());
            }
            if max_step < 1e-10 {
                break;
            }
        }
        Ok(Logistic {
            mean,
            scale,
            intercept: w[0],
            weights: w[1..].to_vec(),
        })
    }

    /// P(positive) for one row.
    pub fn probability(&self, row: &[f64]) -> f64 {
        let z: f64 = row
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((a, m), s), w)| (a - m) / s * w)
            .sum();
        sigmoid(self.intercept + z)
    }

    /// The fraction of rows classified correctly (threshold ½).
    pub fn accuracy(&self, x: &[Vec<f64>], y: &[bool]) -> f64 {
        let right = x
            .iter()
            .zip(y)
            .filter(|(r, &t)| (self.probability(r) >= 0.5) == t)
            .count();
        right as f64 / x.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_a_separable_problem_and_fails_on_noise_honestly() {
        let x: Vec<Vec<f64>> = (0..40)
            .map(|i| vec![i as f64, ((i * 7) % 5) as f64])
            .collect();
        let y: Vec<bool> = (0..40).map(|i| i >= 20).collect();
        let m = Logistic::fit(&x, &y, 1e-3).unwrap();
        assert_eq!(m.accuracy(&x, &y), 1.0);
        // Labels unrelated to the only feature's order: accuracy well below 1.
        let y2: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
        let x2: Vec<Vec<f64>> = (0..40).map(|i| vec![(i / 2) as f64]).collect();
        let m2 = Logistic::fit(&x2, &y2, 1e-3).unwrap();
        assert!(m2.accuracy(&x2, &y2) <= 0.6);
    }

    #[test]
    fn cholesky_solves() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let x = solve_spd(&a, &[2.0, 1.0], 2).unwrap();
        assert!(
            (4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12
                && (2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12
        );
    }
}
