// PaliGemma: the SigLIP tower + projector (siglip.cc) in front of the shared Gemma
// decoder. Everything PaliGemma-specific on the text side is already a decoder
// feature driven by the config and the SequenceChunk: image rows replace the
// embeddings of image tokens unscaled, the image + prompt prefix attends
// bidirectionally (prefix-LM), and RoPE positions start at 1.
// ref: architectures.md §6; HF modeling_paligemma.py.
#include "model/decoder.h"
#include "model/families.h"
#include "model/siglip.h"

namespace gemmarun {

class PaliGemmaModel final : public Decoder {
 public:
  using Decoder::Decoder;

  // Once per image: the tower's cost does not depend on the prompt, and the
  // features are consumed by the prefix pass that follows.
  // Its activations are allocated per image: the tower runs once per request,
  // outside the decode loop, and the model stays const for concurrent callers.
  Result<Tensor> EncodeImage(const TensorView& pixels) const override {
    const VisionConfig& v = config_.vision;
    GR_RETURN_IF_ERROR(CheckPixels(v, pixels));
    VisionActivations vision_act;
    Tensor vision_out_buffer;
    const TensorView vision_out = Rows(vision_out_buffer, v.num_patches(), v.model_dim);
    SiglipTower(ctx_, v, weights_.vision, pixels, vision_act, vision_out);
    Tensor features;
    if (!Tensor::TryCreate(DType::kF32, Shape{config_.num_image_tokens, config_.model_dim}, &features)) {
      return ResourceExhausted("out of memory for the image features");
    }
    ProjectImage(ctx_, weights_.vision, vision_out, features.view());
    return features;
  }
};

Result<std::unique_ptr<Model>> CreatePaliGemmaModel(ModelConfig config, ModelWeights weights, Backend* backend) {
  const VisionConfig& v = config.vision;
  // ParseHfConfig checks these for config.json; a hand-built config may not have.
  if (v.num_patches() <= 0 || config.num_image_tokens != v.num_patches() || v.num_heads <= 0 ||
      v.model_dim % v.num_heads != 0) {
    return InvalidArgument("paligemma: vision tower of " + std::to_string(v.num_patches()) + " patches for " +
                           std::to_string(config.num_image_tokens) + " image tokens");
  }
  if (weights.vision.layers.size() != static_cast<size_t>(v.num_layers)) {
    return InvalidArgument("paligemma: weights hold " + std::to_string(weights.vision.layers.size()) +
                           " vision layers, the config " + std::to_string(v.num_layers));
  }
  return std::unique_ptr<Model>(std::make_unique<PaliGemmaModel>(std::move(config), std::move(weights), backend));
}

}  // namespace gemmarun
