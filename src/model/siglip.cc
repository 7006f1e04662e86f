#include "model/siglip.h"

#include <cmath>

#include "model/blocks.h"

namespace gemmarun {
namespace {

// Conv2d(kernel = stride = patch, padding "valid") as a matrix product: each patch
// becomes one row laid out [channel, py, px], the order of the Conv2d weight
// [vision_dim, channels, patch, patch] that the loader keeps as [vision_dim, C*P*P].
// Patches are numbered row-major over the grid, as HF's flatten(2).transpose(1, 2).
// Runs on the host (once per image); the rows are then uploaded.
void Im2Col(const VisionConfig& c, const TensorView& pixels, const TensorView& patches) {
  const int64_t grid = c.image_size / c.patch_size;
  const int64_t p = c.patch_size;
  const int64_t size = c.image_size;
  const float* src = pixels.f32();
  for (int64_t gy = 0; gy < grid; ++gy) {
    for (int64_t gx = 0; gx < grid; ++gx) {
      float* row = patches.f32() + (gy * grid + gx) * patches.shape.cols();
      for (int64_t ch = 0; ch < c.num_channels; ++ch) {
        for (int64_t py = 0; py < p; ++py) {
          const float* line = src + (ch * size + gy * p + py) * size + gx * p;
          for (int64_t px = 0; px < p; ++px) *row++ = line[px];
        }
      }
    }
  }
}

// Pre-LN encoder layer: x += out_proj(MHA(ln1(x))); x += fc2(gelu_tanh(fc1(ln2(x)))).
// ref: HF SiglipEncoderLayer, SiglipAttention (biases everywhere, scale head_dim^-0.5).
void EncoderLayer(const ops::OpContext& ctx, const VisionConfig& c, const VisionLayerWeights& w, VisionActivations& act,
                  const TensorView& x) {
  const int64_t n = x.shape.rows();
  const int64_t d = c.model_dim;
  const int64_t head_dim = d / c.num_heads;
  const TensorView normed = Fit(act.normed, n, d);
  const TensorView branch = Fit(act.branch, n, d);
  const TensorView q = Fit(act.q, n, d);
  const TensorView k = Fit(act.k, n, d);
  const TensorView v = Fit(act.v, n, d);
  const TensorView attn = Fit(act.attn, n, d);
  const TensorView hidden = Fit(act.hidden, n, c.ff_hidden_dim);
  const Shape heads{n, c.num_heads, head_dim};

  ops::LayerNorm(ctx, x, w.norm1_weight.view(), w.norm1_bias.view(), c.layer_norm_eps, normed);
  ops::MatMul(ctx, normed, w.q_proj.view(), w.q_bias.view(), q);
  ops::MatMul(ctx, normed, w.k_proj.view(), w.k_bias.view(), k);
  ops::MatMul(ctx, normed, w.v_proj.view(), w.v_bias.view(), v);
  // Full bidirectional attention over the patches: the K/V of all patches are a
  // cache of one block of n slots, and one prefix spanning them lets every query
  // see every key. No RoPE: positions were added to the patch embeddings.
  const int32_t block_table[] = {0};
  AttentionSequence sequence;
  sequence.num_rows = n;
  sequence.prefix_end = n;
  sequence.block_table = block_table;
  AttentionArgs args;
  args.q = q.Reshaped(heads);
  args.out = attn.Reshaped(heads);
  args.cache.k = k.Reshaped(heads);
  args.cache.v = v.Reshaped(heads);
  args.cache.block_size = n;
  args.sequences = std::span<const AttentionSequence>(&sequence, 1);
  args.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  ops::Attention(ctx, args);
  ops::MatMul(ctx, attn, w.o_proj.view(), w.o_bias.view(), branch);
  ops::Add(ctx, x, branch, x);

  ops::LayerNorm(ctx, x, w.norm2_weight.view(), w.norm2_bias.view(), c.layer_norm_eps, normed);
  ops::MatMul(ctx, normed, w.fc1.view(), w.fc1_bias.view(), hidden);
  ops::Gelu(ctx, hidden);  // ref: SiglipVisionConfig hidden_act "gelu_pytorch_tanh"
  ops::MatMul(ctx, hidden, w.fc2.view(), w.fc2_bias.view(), branch);
  ops::Add(ctx, x, branch, x);
}

}  // namespace

Status CheckPixels(const VisionConfig& c, const TensorView& pixels) {
  const Shape expected{c.num_channels, c.image_size, c.image_size};
  if (pixels.empty() || pixels.dtype != DType::kF32 || pixels.shape != expected) {
    return InvalidArgument("the vision tower takes f32 pixels " + expected.ToString() + ", got " +
                           std::string(Name(pixels.dtype)) + " " + pixels.shape.ToString());
  }
  return Status::Ok();
}

Status SiglipTower(const ops::OpContext& ctx, const VisionConfig& c, const VisionWeights& w, const TensorView& pixels,
                   VisionActivations& act, const TensorView& out) {
  const int64_t n = c.num_patches();
  const int64_t d = c.model_dim;
  const int64_t patch_values = int64_t{c.num_channels} * c.patch_size * c.patch_size;
  GR_CHECK(out.shape.rows() == n && out.shape.cols() == c.model_dim) << "SiglipTower: out " << out.shape.ToString();
  GR_CHECK(pixels.device.is_host()) << "SiglipTower: pixels must be host memory";
  if (act.x.empty()) {
    bool ok = true;
    for (Tensor* t : {&act.x, &act.normed, &act.q, &act.k, &act.v, &act.attn, &act.branch}) {
      MakeActivation(*ctx.backend, *t, n, d, ok);
    }
    MakeActivation(*ctx.backend, act.patches, n, patch_values, ok);
    MakeActivation(*ctx.backend, act.hidden, n, c.ff_hidden_dim, ok);
    if (!ok) {
      act = VisionActivations{};
      return ResourceExhausted("not enough memory on " + ctx.backend->device().ToString() +
                               " for the vision tower's activations");
    }
  }
  const TensorView patches = Fit(act.patches, n, patch_values);
  const TensorView x = Fit(act.x, n, c.model_dim);

  Tensor host_patches(DType::kF32, Shape{n, patch_values});
  Im2Col(c, pixels, host_patches.view());
  GR_RETURN_IF_ERROR(ctx.backend->memory().Upload(patches.data, host_patches.data(), patches.bytes()));
  ops::MatMul(ctx, patches, w.patch_embedding.view(), w.patch_bias.view(), x);
  // ref: HF SiglipVisionEmbeddings: learned, one per patch, no interpolation at the native size.
  ops::Add(ctx, x, w.position_embedding.view(), x);
  for (const VisionLayerWeights& layer : w.layers) EncoderLayer(ctx, c, layer, act, x);
  ops::LayerNorm(ctx, x, w.post_norm_weight.view(), w.post_norm_bias.view(), c.layer_norm_eps, out);
  return Status::Ok();
}

void ProjectImage(const ops::OpContext& ctx, const VisionWeights& w, const TensorView& vision_out,
                  const TensorView& out) {
  ops::MatMul(ctx, vision_out, w.projector.view(), w.projector_bias.view(), out);
}

}  // namespace gemmarun
