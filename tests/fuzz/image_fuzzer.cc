// PNG/JPEG decoding (stb_image behind our own size checks), then resizing and
// the SigLIP preprocessing to a size taken from the input's first bytes.
#include <algorithm>
#include <cstdint>
#include <span>

#include "io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun;
  if (size < 2) return 0;
  auto image = DecodeImage(std::span<const uint8_t>(data + 2, size - 2), "fuzz.png");
  if (!image.ok()) return 0;
  // Large decoded images are valid but slow to resample; the decoder is the risk.
  if (static_cast<int64_t>(image->width) * image->height > 1 << 20) return 0;
  const int width = 1 + data[0] % 64, height = 1 + data[1] % 64;
  (void)ResizeImage(*image, width, height, Resample::kBilinear);
  ImagePreprocess preprocess;
  preprocess.width = width;
  preprocess.height = height;
  (void)PreprocessImage(*image, preprocess);
  return 0;
}
