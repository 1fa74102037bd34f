//! The tape: an arena (Wengert list) of nodes with integer ids.
//!
//! Every node holds its value; after [`Tape::backward`] its adjoint (∂F/∂node), and
//! when tangents are seeded its tangent (d node / dt along a direction, forward mode).
//! Values, adjoints and tangents of EVERY node stay addressable by [`NodeId`] until the
//! tape is cleared. Forward and backward are linear sweeps over the arena: no recursion,
//! no reference counting.
//!
//! Only nodes that depend on a [`Tape::variable`] get adjoints: constants (weights during
//! attribution) never receive gradients, so no weight-gradient work is done unless weights
//! are variables (training).

use crate::tensor::Tensor;
use crate::{ensure, Error, Result};
use mho_kernels::Float;

/// State an op's forward pass leaves on the tape for its VJP and JVP (max pooling
/// keeps its argmax, so the backward and tangent passes do not search the windows
/// again).
pub type Saved = Box<dyn std::any::Any + Send + Sync>;

/// The index of a node in its tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// How an op's output depends on its differentiable inputs, for exact path integrals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linearity {
    /// Affine in its inputs (linear, conv, pooling by averaging, reshapes, batch norm).
    Affine,
    /// Piecewise affine with kinks it can locate (relu, leaky relu, prelu, max pooling).
    PiecewiseLinear,
    /// Anything else (tanh, sigmoid, softmax, products of variables).
    Smooth,
}

/// One differentiable operation: its forward value, its vector-Jacobian product
/// (reverse mode) and its Jacobian-vector product (forward mode), side by side.
///
/// Subgradient conventions are shared by `vjp` and `jvp` so that the dot-product
/// identity ⟨v, J·u⟩ = ⟨Jᵀ·v, u⟩ holds exactly, kinks included: relu'(0) = 0 and
/// max ties go to the first index.
pub trait Op<T: Float>: Send + Sync {
    /// The op's name, used in error messages ("conv2d", "relu", …).
    fn name(&self) -> &'static str;

    /// The forward value from the input values.
    fn forward(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>>;

    /// Reverse mode: given ∂F/∂output, returns ∂F/∂input for every input `i` with
    /// `needs[i]` (and `None` for the others).
    fn vjp(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>>;

    /// Forward mode: the output's tangent given the inputs' tangents (`None` = zero).
    /// At least one tangent is `Some`.
    fn jvp(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        tangents: &[Option<&Tensor<T>>],
    ) -> Result<Tensor<T>>;

    /// [`Op::forward`], also returning state for [`Op::vjp_with`] and [`Op::jvp_with`].
    /// The tape calls this one; the default keeps no state.
    fn forward_saving(&self, inputs: &[&Tensor<T>]) -> Result<(Tensor<T>, Option<Saved>)> {
        Ok((self.forward(inputs)?, None))
    }

    /// [`Op::vjp`] given the state `forward_saving` returned for these same inputs
    /// (`None`: compute without it). The tape calls this one; the default ignores it.
    fn vjp_with(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        needs: &[bool],
        saved: Option<&Saved>,
    ) -> Result<Vec<Option<Tensor<T>>>> {
        let _ = saved;
        self.vjp(inputs, output, grad_output, needs)
    }

    /// [`Op::jvp`] given the state `forward_saving` returned for these same inputs
    /// (`None`: compute without it). The tape calls this one; the default ignores it.
    fn jvp_with(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        tangents: &[Option<&Tensor<T>>],
        saved: Option<&Saved>,
    ) -> Result<Tensor<T>> {
        let _ = saved;
        self.jvp(inputs, output, tangents)
    }

    /// The forward value, its saved state and the output's tangent together; the tape
    /// calls this when any input carries a tangent. The default runs
    /// [`Op::forward_saving`] then [`Op::jvp_with`]; pointwise ops override it to read
    /// their input once. Overrides must give bit-identical results to the default.
    fn forward_and_jvp(
        &self,
        inputs: &[&Tensor<T>],
        tangents: &[Option<&Tensor<T>>],
    ) -> Result<(Tensor<T>, Option<Saved>, Tensor<T>)> {
        let (value, saved) = self.forward_saving(inputs)?;
        let tangent = self.jvp_with(inputs, &value, tangents, saved.as_ref())?;
        Ok((value, saved, tangent))
    }

    /// How the op bends (default: smooth, the safe assumption).
    fn linearity(&self) -> Linearity {
        Linearity::Smooth
    }
}

struct Node<T: Float> {
    op: Option<Box<dyn Op<T>>>,
    inputs: Vec<NodeId>,
    value: Tensor<T>,
    saved: Option<Saved>,
    requires_grad: bool,
    /// False for a [`Tape::variable_without_adjoint`]: its dependents get adjoints, it
    /// does not (so the VJPs into it are not computed).
    wants_adjoint: bool,
    adjoint: Option<Tensor<T>>,
    tangent: Option<Tensor<T>>,
}

/// An arena of recorded operations over `f32` or `f64`.
pub struct Tape<T: Float> {
    nodes: Vec<Node<T>>,
}

impl<T: Float> Drop for Tape<T> {
    /// A dropped tape gives its buffers to [`crate::buffers`], like [`Tape::clear`].
    fn drop(&mut self) {
        self.clear();
    }
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape { nodes: Vec::new() }
    }

    /// The number of nodes recorded.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Forgets every node (keeping the arena's capacity for the next pass, and giving
    /// the nodes' buffers to [`crate::buffers`] for the next pass's tensors).
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Forgets every node from index `len` on, like [`Tape::clear`] for the tail only:
    /// the nodes before it (a model's weights, say) stay for the next pass. Adjoints and
    /// tangents of the kept nodes are cleared too.
    pub fn truncate(&mut self, len: usize) {
        for node in self.nodes.iter_mut().take(len) {
            for t in [node.adjoint.take(), node.tangent.take()]
                .into_iter()
                .flatten()
            {
                t.recycle();
            }
        }
        for node in self.nodes.drain(len.min(self.nodes.len())..) {
            node.value.recycle();
            for t in [node.adjoint, node.tangent].into_iter().flatten() {
                t.recycle();
            }
            // Saved index buffers (max pooling's argmax) are recycled too.
            if let Some(Ok(indices)) = node.saved.map(|s| s.downcast::<Vec<usize>>()) {
                crate::buffers::give(*indices);
            }
        }
    }

    fn push_leaf(&mut self, value: Tensor<T>, requires_grad: bool, wants_adjoint: bool) -> NodeId {
        self.nodes.push(Node {
            op: None,
            inputs: Vec::new(),
            value,
            saved: None,
            requires_grad,
            wants_adjoint,
            adjoint: None,
            tangent: None,
        });
        NodeId(self.nodes.len() - 1)
    }

    /// A leaf that gradients flow to (an input being attributed, or a weight being trained).
    pub fn variable(&mut self, value: Tensor<T>) -> NodeId {
        self.push_leaf(value, true, true)
    }

    /// A leaf like [`Tape::variable`] (every node that depends on it gets an adjoint)
    /// whose own adjoint is never computed: an attribution's input when only hidden
    /// layers' adjoints are read, which spares the first layer's input-gradient kernel.
    /// [`Tape::adjoint`] of it stays `None`.
    pub fn variable_without_adjoint(&mut self, value: Tensor<T>) -> NodeId {
        self.push_leaf(value, true, false)
    }

    /// A leaf that receives no gradient (weights during attribution, data).
    pub fn constant(&mut self, value: Tensor<T>) -> NodeId {
        self.push_leaf(value, false, false)
    }

    fn node(&self, id: NodeId) -> Result<&Node<T>> {
        self.nodes
            .get(id.0)
            .ok_or_else(|| Error::new(format!("tape: no node {}", id.0)))
    }

    /// Seeds the tangent of a leaf; ops applied afterwards carry tangents forward.
    pub fn set_tangent(&mut self, id: NodeId, tangent: Tensor<T>) -> Result<()> {
        let node = self.node(id)?;
        ensure!(
            node.value.shape() == tangent.shape(),
            "tape: tangent of shape {:?} for node {} of shape {:?}",
            tangent.shape(),
            id.0,
            node.value.shape()
        );
        self.nodes[id.0].tangent = Some(tangent);
        Ok(())
    }

    /// Records `op` applied to `inputs`: computes its value and, when any input has a
    /// tangent, its tangent. Errors name the op and the shapes.
    pub fn apply(&mut self, op: impl Op<T> + 'static, inputs: &[NodeId]) -> Result<NodeId> {
        self.apply_boxed(Box::new(op), inputs)
    }

    /// [`Tape::apply`] for an already boxed op.
    pub fn apply_boxed(&mut self, op: Box<dyn Op<T>>, inputs: &[NodeId]) -> Result<NodeId> {
        for &i in inputs {
            self.node(i)?;
        }
        let values: Vec<&Tensor<T>> = inputs.iter().map(|i| &self.nodes[i.0].value).collect();
        let tangents: Vec<Option<&Tensor<T>>> = inputs
            .iter()
            .map(|i| self.nodes[i.0].tangent.as_ref())
            .collect();
        let (value, saved, tangent) = if tangents.iter().any(Option::is_some) {
            let (value, saved, tangent) = op.forward_and_jvp(&values, &tangents)?;
            (value, saved, Some(tangent))
        } else {
            let (value, saved) = op.forward_saving(&values)?;
            (value, saved, None)
        };
        let requires_grad = inputs.iter().any(|i| self.nodes[i.0].requires_grad);
        self.nodes.push(Node {
            op: Some(op),
            inputs: inputs.to_vec(),
            value,
            saved,
            requires_grad,
            wants_adjoint: requires_grad,
            adjoint: None,
            tangent,
        });
        Ok(NodeId(self.nodes.len() - 1))
    }

    /// The value of a node.
    pub fn value(&self, id: NodeId) -> &Tensor<T> {
        &self.nodes[id.0].value
    }

    /// The adjoint ∂F/∂node from the last backward pass (`None` when the node does not
    /// depend on a variable, does not reach the output, or is a
    /// [`Tape::variable_without_adjoint`]).
    pub fn adjoint(&self, id: NodeId) -> Option<&Tensor<T>> {
        self.nodes[id.0].adjoint.as_ref()
    }

    /// The tangent of a node (`None` when no seeded leaf reaches it: a zero tangent).
    pub fn tangent(&self, id: NodeId) -> Option<&Tensor<T>> {
        self.nodes[id.0].tangent.as_ref()
    }

    /// True when the node depends on a variable.
    pub fn requires_grad(&self, id: NodeId) -> bool {
        self.nodes[id.0].requires_grad
    }

    /// The ids of a node's inputs.
    pub fn inputs(&self, id: NodeId) -> &[NodeId] {
        &self.nodes[id.0].inputs
    }

    /// The name of the op that made a node ("leaf" for leaves).
    pub fn op_name(&self, id: NodeId) -> &'static str {
        self.nodes[id.0].op.as_ref().map_or("leaf", |op| op.name())
    }

    /// Reverse sweep: sets the adjoint of `output` to `seed` and propagates adjoints to
    /// every node that depends on a variable. Previous adjoints are cleared first.
    pub fn backward(&mut self, output: NodeId, seed: Tensor<T>) -> Result<()> {
        let out = self.node(output)?;
        ensure!(
            out.value.shape() == seed.shape(),
            "backward: seed of shape {:?} for output of shape {:?}",
            seed.shape(),
            out.value.shape()
        );
        for node in &mut self.nodes {
            if let Some(a) = node.adjoint.take() {
                a.recycle();
            }
        }
        if !self.nodes[output.0].wants_adjoint {
            return Ok(());
        }
        self.nodes[output.0].adjoint = Some(seed);
        for i in (0..=output.0).rev() {
            let node = &self.nodes[i];
            let (Some(op), Some(grad)) = (node.op.as_ref(), node.adjoint.as_ref()) else {
                continue;
            };
            let needs: Vec<bool> = node
                .inputs
                .iter()
                .map(|j| self.nodes[j.0].wants_adjoint)
                .collect();
            if !needs.iter().any(|&b| b) {
                continue;
            }
            let values: Vec<&Tensor<T>> =
                node.inputs.iter().map(|j| &self.nodes[j.0].value).collect();
            let grads = op.vjp_with(&values, &node.value, grad, &needs, node.saved.as_ref())?;
            ensure!(
                grads.len() == node.inputs.len(),
                "{}: vjp returned {} gradients for {} inputs",
                op.name(),
                grads.len(),
                node.inputs.len()
            );
            let inputs = node.inputs.clone();
            for (j, g) in inputs.into_iter().zip(grads) {
                let Some(g) = g else { continue };
                if !self.nodes[j.0].wants_adjoint {
                    continue;
                }
                match &mut self.nodes[j.0].adjoint {
                    Some(acc) => {
                        acc.add_assign(&g)?;
                        g.recycle();
                    }
                    slot @ None => *slot = Some(g),
                }
            }
        }
        Ok(())
    }

    /// Reverse sweep from a one-element output with seed 1.
    pub fn backward_scalar(&mut self, output: NodeId) -> Result<()> {
        let shape = self.node(output)?.value.shape().to_vec();
        ensure!(
            shape.iter().product::<usize>() == 1,
            "backward_scalar: output has shape {shape:?}, not one element"
        );
        self.backward(output, Tensor::full(&shape, T::ONE))
    }

    /// Forward sweep: clears all tangents, seeds the given leaves, and recomputes the
    /// tangent of every node downstream of them.
    pub fn compute_tangents(&mut self, seeds: Vec<(NodeId, Tensor<T>)>) -> Result<()> {
        for node in &mut self.nodes {
            if let Some(t) = node.tangent.take() {
                t.recycle();
            }
        }
        for (id, t) in seeds {
            self.set_tangent(id, t)?;
        }
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            let Some(op) = node.op.as_ref() else { continue };
            let tangents: Vec<Option<&Tensor<T>>> = node
                .inputs
                .iter()
                .map(|j| self.nodes[j.0].tangent.as_ref())
                .collect();
            if tangents.iter().all(Option::is_none) {
                continue;
            }
            let values: Vec<&Tensor<T>> =
                node.inputs.iter().map(|j| &self.nodes[j.0].value).collect();
            let t = op.jvp_with(&values, &node.value, &tangents, node.saved.as_ref())?;
            self.nodes[i].tangent = Some(t);
        }
        Ok(())
    }
}
