// The SigLIP vision tower of PaliGemma and its linear projector: pixels
// [channels, image_size, image_size] -> one row per patch in the text model's
// width. The tower is a plain pre-LayerNorm ViT encoder without a class token
// or pooling head (`vision_use_head: false` in every released PaliGemma).
// ref: architectures.md §6.2-6.3; HF modeling_siglip.py SiglipVisionTransformer.
#pragma once

#include "model/config.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace gemmarun {

// Buffers of one tower pass on the backend's device, sized on first use and
// reused for later images.
struct VisionActivations {
  Tensor patches;  // [num_patches, channels * patch * patch] im2col rows
  Tensor x;        // [num_patches, vision_dim] residual stream
  Tensor normed;   // [num_patches, vision_dim]
  Tensor q;        // [num_patches, vision_dim] = [num_patches, heads, head_dim]
  Tensor k;        // [num_patches, vision_dim], doubles as the attention "cache"
  Tensor v;        // [num_patches, vision_dim]
  Tensor attn;     // [num_patches, vision_dim]
  Tensor hidden;   // [num_patches, vision_ff]
  Tensor branch;   // [num_patches, vision_dim] attention / MLP output
};

// A Status (not a check): pixels come from the caller, e.g. an Image built by hand.
Status CheckPixels(const VisionConfig& config, const TensorView& pixels);

// out [num_patches, vision_dim] = post_layernorm(encoder(patch_embed(pixels) + pos)).
// pixels [channels, image_size, image_size] f32 host memory, already normalised
// (PaliGemma: [-1, 1]); out on the backend's device. Fails when the device is
// out of memory for the activations.
Status SiglipTower(const ops::OpContext& ctx, const VisionConfig& config, const VisionWeights& w,
                 const TensorView& pixels, VisionActivations& act, const TensorView& out);

// out [num_patches, model_dim] = vision_out @ projector^T + bias. The result goes
// into the decoder's residual stream unscaled: HF divides it by sqrt(model_dim)
// and the decoder's embedding scale multiplies it back, which cancels up to one
// f32 rounding (architectures.md §6.3; gemma.cpp EmbedMMToken does the same).
void ProjectImage(const ops::OpContext& ctx, const VisionWeights& w, const TensorView& vision_out,
                  const TensorView& out);

}  // namespace gemmarun
