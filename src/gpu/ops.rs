//! One op, one submission: the conveniences over [`Recorder`](crate::gpu::Recorder), on GPU
//! tensors and on host slices (upload, run, read back; blocking and `_async`).

use crate::epilogue::{Addends, Epilogue};
use crate::error::{Result, TensorRole};
use crate::gpu::plan::{OpPlan, Operand};
use crate::gpu::tensor::GpuTensor;
use crate::gpu::GpuContext;
use crate::problem::{check_data_len, check_output_grad_shape, ConvParams, ConvProblem, Op};

impl GpuContext {
    /// Records `plan` on its inputs alone and submits it.
    pub fn run_plan(&self, plan: &OpPlan, operands: &[(Operand, &GpuTensor)]) -> Result<GpuTensor> {
        let mut rec = self.recorder();
        let out = rec.record(plan, operands)?;
        rec.submit()?;
        Ok(out)
    }

    /// Y = conv(X, W) (+ b), recorded and submitted. `x` is (N, C, H, W), `w` (K, C/groups,
    /// R, S), `bias` (K,). Nothing waits for the GPU until the result is read.
    pub fn forward(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: ConvParams,
    ) -> Result<GpuTensor> {
        let mut rec = self.recorder();
        let y = rec.forward(x, w, bias, params)?;
        rec.submit()?;
        Ok(y)
    }

    /// dX from dY and W, recorded and submitted. `x_shape` is the forward input's (N, C, H, W).
    pub fn input_grad(
        &self,
        dy: &GpuTensor,
        w: &GpuTensor,
        x_shape: &[usize],
        params: ConvParams,
    ) -> Result<GpuTensor> {
        let mut rec = self.recorder();
        let dx = rec.input_grad(dy, w, x_shape, params)?;
        rec.submit()?;
        Ok(dx)
    }

    /// dW from dY and X, recorded and submitted. `w_shape` is the weight's (K, C/groups, R, S).
    pub fn weight_grad(
        &self,
        dy: &GpuTensor,
        x: &GpuTensor,
        w_shape: &[usize],
        params: ConvParams,
    ) -> Result<GpuTensor> {
        let mut rec = self.recorder();
        let dw = rec.weight_grad(dy, x, w_shape, params)?;
        rec.submit()?;
        Ok(dw)
    }

    /// db\[k\] = Σ dY\[n,k,·,·\], recorded and submitted. `dy` is (N, K, P, Q).
    pub fn bias_grad(&self, dy: &GpuTensor) -> Result<GpuTensor> {
        let mut rec = self.recorder();
        let db = rec.bias_grad(dy)?;
        rec.submit()?;
        Ok(db)
    }

    /// Forward convolution on host slices; returns Y (N, K, P, Q) flat.
    pub async fn conv2d_forward_async(
        &self,
        x: &[f32],
        x_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        bias: Option<&[f32]>,
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        let problem = ConvProblem::new(x_shape, w_shape, params)?;
        problem.check_len(TensorRole::Input, x.len())?;
        problem.check_len(TensorRole::Weight, w.len())?;
        if let Some(b) = bias {
            problem.check_len(TensorRole::Bias, b.len())?;
        }
        // Planned once, before anything is uploaded: a problem the device cannot run fails first.
        let plan = self.plan(Op::Forward, &problem, bias.is_some())?;
        let xt = self.upload_as(TensorRole::Input, x, x_shape)?;
        let wt = self.upload_as(TensorRole::Weight, w, w_shape)?;
        let mut operands = vec![(Operand::X, &xt), (Operand::W, &wt)];
        let bt = match bias {
            Some(b) => Some(self.upload_as(TensorRole::Bias, b, &[problem.k])?),
            None => None,
        };
        if let Some(bt) = &bt {
            operands.push((Operand::Bias, bt));
        }
        let y = self.run_plan(&plan, &operands)?;
        self.read_async(&y).await
    }

    /// Blocking form of [`GpuContext::conv2d_forward_async`].
    pub fn conv2d_forward(
        &self,
        x: &[f32],
        x_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        bias: Option<&[f32]>,
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        pollster::block_on(self.conv2d_forward_async(x, x_shape, w, w_shape, bias, params))
    }

    /// The fused forward y = act(α·conv(x, w) + b + β·z) on host slices ([`Addends`] holds the
    /// optional bias (K,) and residual (Y's shape)); returns Y, and the pre-activation when
    /// `save_pre`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_forward_fused(
        &self,
        x: &[f32],
        x_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        addends: Addends<'_>,
        epilogue: &Epilogue,
        params: ConvParams,
        save_pre: bool,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let problem = ConvProblem::new(x_shape, w_shape, params)?;
        problem.check_len(TensorRole::Input, x.len())?;
        problem.check_len(TensorRole::Weight, w.len())?;
        let y_shape = problem.y_shape();
        let bt = addends
            .bias
            .map(|b| self.upload_as(TensorRole::Bias, b, &[problem.k]))
            .transpose()?;
        let zt = addends
            .residual
            .map(|z| self.upload_as(TensorRole::Residual, z, &y_shape))
            .transpose()?;
        let xt = self.upload_as(TensorRole::Input, x, x_shape)?;
        let wt = self.upload_as(TensorRole::Weight, w, w_shape)?;
        let mut rec = self.recorder();
        let (y, pre) = if save_pre {
            let (y, pre) =
                rec.forward_fused_saving_pre(&xt, &wt, bt.as_ref(), zt.as_ref(), epilogue, params)?;
            (y, Some(pre))
        } else {
            let y = rec.forward_fused(&xt, &wt, bt.as_ref(), zt.as_ref(), epilogue, params)?;
            (y, None)
        };
        rec.submit()?;
        let pre = pre.map(|p| self.read(&p)).transpose()?;
        Ok((self.read(&y)?, pre))
    }

    /// Input gradient on host slices; returns dX (N, C, H, W) flat.
    pub async fn conv2d_input_grad_async(
        &self,
        dy: &[f32],
        dy_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        x_shape: &[usize],
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        let problem = ConvProblem::with_output_grad(x_shape, w_shape, dy_shape, params)?;
        problem.check_len(TensorRole::OutputGrad, dy.len())?;
        problem.check_len(TensorRole::Weight, w.len())?;
        let plan = self.plan(Op::InputGrad, &problem, false)?;
        let dyt = self.upload_as(TensorRole::OutputGrad, dy, dy_shape)?;
        let wt = self.upload_as(TensorRole::Weight, w, w_shape)?;
        let dx = self.run_plan(&plan, &[(Operand::Dy, &dyt), (Operand::W, &wt)])?;
        self.read_async(&dx).await
    }

    /// Blocking form of [`GpuContext::conv2d_input_grad_async`].
    pub fn conv2d_input_grad(
        &self,
        dy: &[f32],
        dy_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        x_shape: &[usize],
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        pollster::block_on(self.conv2d_input_grad_async(dy, dy_shape, w, w_shape, x_shape, params))
    }

    /// Weight gradient on host slices; returns dW (K, C/groups, R, S) flat.
    pub async fn conv2d_weight_grad_async(
        &self,
        dy: &[f32],
        dy_shape: &[usize],
        x: &[f32],
        x_shape: &[usize],
        w_shape: &[usize],
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        let problem = ConvProblem::with_output_grad(x_shape, w_shape, dy_shape, params)?;
        problem.check_len(TensorRole::OutputGrad, dy.len())?;
        problem.check_len(TensorRole::Input, x.len())?;
        let plan = self.plan(Op::WeightGrad, &problem, false)?;
        let dyt = self.upload_as(TensorRole::OutputGrad, dy, dy_shape)?;
        let xt = self.upload_as(TensorRole::Input, x, x_shape)?;
        let dw = self.run_plan(&plan, &[(Operand::Dy, &dyt), (Operand::X, &xt)])?;
        self.read_async(&dw).await
    }

    /// Blocking form of [`GpuContext::conv2d_weight_grad_async`].
    pub fn conv2d_weight_grad(
        &self,
        dy: &[f32],
        dy_shape: &[usize],
        x: &[f32],
        x_shape: &[usize],
        w_shape: &[usize],
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        pollster::block_on(self.conv2d_weight_grad_async(dy, dy_shape, x, x_shape, w_shape, params))
    }

    /// Bias gradient on a host slice; returns db (K,).
    pub async fn conv2d_bias_grad_async(&self, dy: &[f32], dy_shape: &[usize]) -> Result<Vec<f32>> {
        let dims = check_output_grad_shape(dy_shape)?;
        check_data_len(TensorRole::OutputGrad, dy_shape, dy.len())?;
        let plan = self.planner.plan_bias_grad(dims)?;
        let dyt = self.upload_as(TensorRole::OutputGrad, dy, dy_shape)?;
        let db = self.run_plan(&plan, &[(Operand::Dy, &dyt)])?;
        self.read_async(&db).await
    }

    /// Blocking form of [`GpuContext::conv2d_bias_grad_async`].
    pub fn conv2d_bias_grad(&self, dy: &[f32], dy_shape: &[usize]) -> Result<Vec<f32>> {
        pollster::block_on(self.conv2d_bias_grad_async(dy, dy_shape))
    }
}
