//! The checkers catch what they are meant to: deliberately broken ops fail them.

mod common;

use common::{check_dot_identity, check_jvp_fd, check_vjp_fd, Rng};
use mho::{Op, Result, Tensor};

/// x², with switchable bugs in its VJP and JVP.
struct Square {
    vjp_scale: f64,
    jvp_scale: f64,
    /// The VJP also returns a gradient for unneeded inputs.
    ignore_needs: bool,
}

impl Op<f64> for Square {
    fn name(&self) -> &'static str {
        "square"
    }

    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(|v| v * v))
    }

    fn vjp(
        &self,
        x: &[&Tensor<f64>],
        _y: &Tensor<f64>,
        g: &Tensor<f64>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<f64>>>> {
        let d = g.zip_map(x[0], |g, v| self.vjp_scale * 2.0 * v * g)?;
        Ok(vec![(needs[0] || self.ignore_needs).then_some(d)])
    }

    fn jvp(
        &self,
        x: &[&Tensor<f64>],
        _y: &Tensor<f64>,
        t: &[Option<&Tensor<f64>>],
    ) -> Result<Tensor<f64>> {
        let t = t[0].expect("tangent");
        t.zip_map(x[0], |t, v| self.jvp_scale * 2.0 * v * t)
    }
}

/// relu whose VJP says relu'(0) = 1 but whose JVP says 0: inconsistent at kinks only.
struct InconsistentRelu;

impl Op<f64> for InconsistentRelu {
    fn name(&self) -> &'static str {
        "inconsistent_relu"
    }

    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(|v| v.max(0.0)))
    }

    fn vjp(
        &self,
        x: &[&Tensor<f64>],
        _y: &Tensor<f64>,
        g: &Tensor<f64>,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor<f64>>>> {
        Ok(vec![Some(g.zip_map(x[0], |g, v| {
            if v >= 0.0 {
                g
            } else {
                0.0
            }
        })?)])
    }

    fn jvp(
        &self,
        x: &[&Tensor<f64>],
        _y: &Tensor<f64>,
        t: &[Option<&Tensor<f64>>],
    ) -> Result<Tensor<f64>> {
        t[0].expect("tangent")
            .zip_map(x[0], |t, v| if v > 0.0 { t } else { 0.0 })
    }
}

fn input() -> Vec<Tensor<f64>> {
    vec![Rng::new(1).tensor(&[3, 4], -2.0, 2.0)]
}

#[test]
fn a_correct_op_passes_every_checker() {
    let op = Square {
        vjp_scale: 1.0,
        jvp_scale: 1.0,
        ignore_needs: false,
    };
    check_vjp_fd(&op, &input(), &mut Rng::new(2)).unwrap();
    check_jvp_fd(&op, &input(), &mut Rng::new(3)).unwrap();
    check_dot_identity(&op, &input(), &mut Rng::new(4)).unwrap();
}

#[test]
fn a_slightly_wrong_vjp_fails_the_finite_difference_check() {
    let op = Square {
        vjp_scale: 1.0 + 1e-4,
        jvp_scale: 1.0,
        ignore_needs: false,
    };
    assert!(check_vjp_fd(&op, &input(), &mut Rng::new(2)).is_err());
    assert!(check_dot_identity(&op, &input(), &mut Rng::new(4)).is_err());
}

#[test]
fn a_slightly_wrong_jvp_fails_the_finite_difference_check() {
    let op = Square {
        vjp_scale: 1.0,
        jvp_scale: 1.0 + 1e-4,
        ignore_needs: false,
    };
    assert!(check_jvp_fd(&op, &input(), &mut Rng::new(3)).is_err());
    assert!(check_dot_identity(&op, &input(), &mut Rng::new(4)).is_err());
}

#[test]
fn a_vjp_ignoring_needs_fails() {
    let op = Square {
        vjp_scale: 1.0,
        jvp_scale: 1.0,
        ignore_needs: true,
    };
    let err = check_vjp_fd(&op, &input(), &mut Rng::new(2)).unwrap_err();
    assert!(err.contains("not needed"), "{err}");
}

#[test]
fn inconsistent_kink_conventions_fail_the_dot_identity_at_kinks() {
    let op = InconsistentRelu;
    // Away from kinks the two conventions agree…
    let smooth = vec![Rng::new(5).tensor_away_from_zero(&[4, 4], 0.1, 1.0)];
    check_dot_identity(&op, &smooth, &mut Rng::new(6)).unwrap();
    // …at exact zeros they do not.
    let kinks = vec![Rng::new(5).kinky(&[4, 4], 1.0)];
    assert!(kinks[0].data().contains(&0.0));
    assert!(check_dot_identity(&op, &kinks, &mut Rng::new(6)).is_err());
}
