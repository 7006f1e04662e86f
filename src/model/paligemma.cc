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
    GR_CHECK(pixels.device.is_host()) << "EncodeImage: pixels must be host memory";
    DeviceMemory& memory = ctx_.backend->memory();
    VisionActivations vision_act;
    GR_ASSIGN_OR_RETURN(Tensor vision_out, Tensor::Allocate(memory, DType::kF32, Shape{v.num_patches(), v.model_dim}));
    GR_RETURN_IF_ERROR(SiglipTower(ctx_, v, weights_.vision, pixels, vision_act, vision_out.view()));
    auto features = Tensor::Allocate(memory, DType::kF32, Shape{config_.num_image_tokens, config_.model_dim});
    if (!features.ok()) return ResourceExhausted("out of memory for the image features");
    ProjectImage(ctx_, weights_.vision, vision_out.view(), features->view());
    GR_RETURN_IF_ERROR(ctx_.backend->Synchronize());
    // The features go back to the host: the caller hashes them for prefix reuse
    // and Forward uploads them over the image tokens' embeddings.
    if (features->on_host()) return std::move(*features);
    return ToHost(memory, features->view());
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
