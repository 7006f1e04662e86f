// Image input for vision towers: decode a PNG or JPEG file (stb_image), convert
// it to 8-bit RGB, resize it the way PIL does, and turn it into normalised
// channels-first floats, following HF image processors (SiglipImageProcessor:
// resize -> rescale 1/255 -> normalize (x - mean) / std). Files come from users,
// so every failure is a Status that names the file and what is wrong with it.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gemmarun/status.h"

namespace gemmarun {

// Refused from the header, before any pixel is decoded: a small file can claim
// dimensions whose decoded pixels would not fit in memory.
inline constexpr int kMaxImageSide = 16384;
inline constexpr int64_t kMaxImagePixels = 100'000'000;

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3]
};

// PIL's numbering of resampling filters, as preprocessor_config.json writes them.
enum class Resample { kBilinear = 2, kBicubic = 3 };

// What an HF image processor does to an image (preprocessor_config.json fields).
struct ImagePreprocess {
  bool do_resize = true;
  int width = 224;  // "size": {"height", "width"}
  int height = 224;
  Resample resample = Resample::kBicubic;  // "resample"
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};  // "image_mean"
  std::array<float, 3> std = {0.5f, 0.5f, 0.5f};   // "image_std"
};

// Decodes PNG or JPEG bytes to RGB (grayscale is replicated, alpha dropped, as PIL's
// convert("RGB")); `what` names the source in errors.
Result<RgbImage> DecodeImage(std::span<const uint8_t> bytes, const std::string& what);
Result<RgbImage> ReadImageFile(const std::string& path);

// PIL's Image.resize(size, resample) for 8-bit RGB, reproduced exactly (see image.cc).
RgbImage ResizeImage(const RgbImage& image, int width, int height, Resample resample);

// Overrides `preprocess` with the fields present in a preprocessor_config.json.
Status ReadPreprocessorConfig(const std::string& path, ImagePreprocess* preprocess);

// resize (if asked and the size differs) -> rescale -> normalize; returns
// [3, height, width] floats, channels first.
std::vector<float> PreprocessImage(const RgbImage& image, const ImagePreprocess& preprocess);

}  // namespace gemmarun
