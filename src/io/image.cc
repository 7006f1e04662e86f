#include "io/image.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "io/json_util.h"
#include "io/mapped_file.h"

#include <stb_image.h>  // declarations; the decoder is compiled in stb_image_impl.cc

namespace gemmarun {
namespace {

enum class Format { kPng, kJpeg, kOther, kUnknown };

struct Sniffed {
  Format format = Format::kUnknown;
  const char* name = "";
};

bool StartsWith(std::span<const uint8_t> bytes, std::initializer_list<uint8_t> prefix) {
  return bytes.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), bytes.begin());
}

// By signature, not by file name: a .png that is really a JPEG still works, and
// formats we do not decode get named in the error.
Sniffed Sniff(std::span<const uint8_t> b) {
  if (StartsWith(b, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})) return {Format::kPng, "PNG"};
  if (StartsWith(b, {0xff, 0xd8, 0xff})) return {Format::kJpeg, "JPEG"};
  if (StartsWith(b, {'G', 'I', 'F', '8'})) return {Format::kOther, "GIF"};
  if (StartsWith(b, {'B', 'M'})) return {Format::kOther, "BMP"};
  if (StartsWith(b, {'R', 'I', 'F', 'F'}) && b.size() >= 12 && std::equal(b.begin() + 8, b.begin() + 12, "WEBP")) {
    return {Format::kOther, "WebP"};
  }
  if (StartsWith(b, {'I', 'I', 42, 0}) || StartsWith(b, {'M', 'M', 0, 42})) return {Format::kOther, "TIFF"};
  return {};
}

std::string FirstBytes(std::span<const uint8_t> bytes) {
  std::string out;
  for (size_t i = 0; i < std::min<size_t>(bytes.size(), 8); ++i) {
    char hex[4];
    std::snprintf(hex, sizeof(hex), "%02x ", bytes[i]);
    out += hex;
  }
  if (!out.empty()) out.pop_back();
  return out;
}

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

Status CheckDimensions(int64_t width, int64_t height, const std::string& what) {
  if (width == 0 || height == 0) {
    return InvalidArgument(what + ": the image is " + std::to_string(width) + "x" + std::to_string(height) +
                           " pixels; it has no pixels");
  }
  if (width > kMaxImageSide || height > kMaxImageSide || width * height > kMaxImagePixels) {
    return InvalidArgument(what + ": the image is " + std::to_string(width) + "x" + std::to_string(height) +
                           " pixels; images are limited to " + std::to_string(kMaxImageSide) + " pixels per side and " +
                           std::to_string(kMaxImagePixels / 1'000'000) + " megapixels");
  }
  return Status::Ok();
}

// Debian's stb_image 2.27 builds each JPEG Huffman table without checking that
// its 16 code counts sum to at most 256, and writes past its 257-entry array
// otherwise (found by tests/fuzz/image_fuzzer; stb 2.28 checks it). Rather than
// follow stb's own walk over segments and scans (it skips stray bytes, reads
// tables past a segment's length, finds markers inside scans), every 0xFF 0xC4
// (DHT) in the file is checked: in entropy-coded data 0xFF is always stuffed or a
// marker, so the only other matches sit inside metadata, where a DHT with more
// than 256 codes is as corrupt.
Status CheckJpegHuffmanTables(std::span<const uint8_t> b, const std::string& what) {
  for (size_t at = 0; at + 4 <= b.size(); ++at) {
    if (b[at] != 0xFF || b[at + 1] != 0xC4) continue;
    int64_t remaining = ((int64_t{b[at + 2]} << 8) | b[at + 3]) - 2;
    for (size_t table = at + 4; remaining > 0 && table < b.size();) {
      // stb reads zeros past the end of the data, so a table cut short still counts.
      size_t codes = 0;
      for (size_t i = table + 1; i <= table + 16 && i < b.size(); ++i) codes += b[i];
      if (codes > 256) {
        return Corrupt(what + ": corrupt JPEG: a Huffman table defines " + std::to_string(codes) +
                       " codes (at most 256)");
      }
      table += 17 + codes;
      remaining -= static_cast<int64_t>(17 + codes);
    }
  }
  return Status::Ok();
}

// stb 2.27's progressive JPEG decoder reads out of bounds on hostile files (its
// Huffman decoder shifts its 32-bit bit buffer by 32, then indexes with the
// garbage; found by tests/fuzz/image_fuzzer, inputs in tests/fuzz/regressions/image),
// so progressive JPEGs are refused: every 0xFF 0xC2 (SOF2) in the file counts, as
// with the DHT check above, so that no walk of ours can disagree with stb's.
Status RefuseProgressiveJpeg(std::span<const uint8_t> b, const std::string& what) {
  for (size_t at = 0; at + 1 < b.size(); ++at) {
    if (b[at] == 0xFF && b[at + 1] == 0xC2) {
      return Unsupported(what + ": progressive JPEG is not supported (its decoder is not safe on corrupt files); "
                                "save the image as a baseline JPEG or a PNG");
    }
  }
  return Status::Ok();
}

std::string StbReason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? reason : "unknown error";
}

// ---- PIL-exact resampling ---------------------------------------------------
//
// HF's SiglipImageProcessor resizes with PIL (`Image.resize(size, BICUBIC)`), so
// we reproduce Pillow's libImaging/Resample.c step by step rather than "a bicubic":
//  - the kernel is Keys' cubic convolution with a = -0.5 (Catmull-Rom, support 2);
//    bilinear is the triangle (support 1);
//  - when downscaling, the kernel is stretched by the scale factor (support and
//    argument both scaled), so each output pixel averages every input pixel it
//    covers (antialiasing) instead of sampling 4 of them;
//  - each output pixel's taps are normalised to sum 1 in double, then rounded to
//    22-bit fixed point (PRECISION_BITS = 32 - 8 - 2), half away from zero;
//  - two separable passes (order: see ResizeImage), each rounding and clipping to
//    8 bits, so the second pass reads already-rounded bytes.
// A plain float bicubic differs from PIL by a few levels per pixel; this one gives
// Pillow 13's bytes exactly (tests/model/paligemma_test.cc, ResizeImage tests).
// HF's torchvision-based "fast" processors are a different implementation and may
// differ by a level or so; the slow SiglipImageProcessor (PIL) is the reference.
constexpr int kPrecisionBits = 32 - 8 - 2;

double BicubicFilter(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

double BilinearFilter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

struct Taps {
  int ksize = 0;
  std::vector<int> first;  // [out_size] first input index
  std::vector<int> count;  // [out_size] taps used
  std::vector<int32_t> k;  // [out_size, ksize] fixed-point weights
};

// ref: Pillow Resample.c precompute_coeffs + normalize_coeffs_8bpc.
Taps PrecomputeTaps(int in_size, int out_size, Resample resample) {
  const bool bicubic = resample == Resample::kBicubic;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = (bicubic ? 2.0 : 1.0) * filterscale;
  Taps taps;
  taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.first.resize(out_size);
  taps.count.resize(out_size);
  taps.k.assign(static_cast<size_t>(out_size) * taps.ksize, 0);
  std::vector<double> w(taps.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;  // multiplied, not divided: Pillow's rounding
    // C casts truncate toward zero, as in Pillow.
    const int xmin = std::max(0, static_cast<int>(center - support + 0.5));
    const int xmax = std::min(in_size, static_cast<int>(center + support + 0.5)) - xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double arg = (x + xmin - center + 0.5) * ss;
      w[x] = bicubic ? BicubicFilter(arg) : BilinearFilter(arg);
      total += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double normalised = total != 0.0 ? w[x] / total : w[x];
      const double fixed = normalised * (1 << kPrecisionBits);
      taps.k[static_cast<size_t>(xx) * taps.ksize + x] = static_cast<int32_t>(fixed < 0 ? fixed - 0.5 : fixed + 0.5);
    }
    taps.first[xx] = xmin;
    taps.count[xx] = xmax;
  }
  return taps;
}

uint8_t Clip8(int32_t acc) { return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255)); }

// ref: Pillow ImagingResampleHorizontal_8bpc / ImagingResampleVertical_8bpc.
RgbImage ResizeHorizontal(const RgbImage& in, int width, Resample resample) {
  const Taps taps = PrecomputeTaps(in.width, width, resample);
  RgbImage out{width, in.height, std::vector<uint8_t>(static_cast<size_t>(width) * in.height * 3)};
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* row = in.pixels.data() + static_cast<size_t>(y) * in.width * 3;
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * width * 3;
    for (int xx = 0; xx < width; ++xx) {
      const int32_t* k = taps.k.data() + static_cast<size_t>(xx) * taps.ksize;
      const uint8_t* src = row + static_cast<size_t>(taps.first[xx]) * 3;
      for (int c = 0; c < 3; ++c) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < taps.count[xx]; ++x) acc += src[x * 3 + c] * k[x];
        dst[xx * 3 + c] = Clip8(acc);
      }
    }
  }
  return out;
}

RgbImage ResizeVertical(const RgbImage& in, int height, Resample resample) {
  const Taps taps = PrecomputeTaps(in.height, height, resample);
  const size_t stride = static_cast<size_t>(in.width) * 3;
  RgbImage out{in.width, height, std::vector<uint8_t>(stride * height)};
  for (int yy = 0; yy < height; ++yy) {
    const int32_t* k = taps.k.data() + static_cast<size_t>(yy) * taps.ksize;
    const uint8_t* src = in.pixels.data() + taps.first[yy] * stride;
    uint8_t* dst = out.pixels.data() + yy * stride;
    for (size_t i = 0; i < stride; ++i) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < taps.count[yy]; ++y) acc += src[y * stride + i] * k[y];
      dst[i] = Clip8(acc);
    }
  }
  return out;
}

Status ReadMeanOrStd(const nlohmann::json& config, const char* key, const std::string& where,
                     std::array<float, 3>* out) {
  if (!config.contains(key) || config[key].is_null()) return Status::Ok();
  const nlohmann::json& value = config[key];
  if (value.is_number()) {
    out->fill(value.get<float>());
    return Status::Ok();
  }
  if (!value.is_array() || value.size() != 3 || !value[0].is_number() || !value[1].is_number() ||
      !value[2].is_number()) {
    return InvalidArgument(where + ": '" + key + "' is " + value.dump() + ", expected a number or 3 numbers");
  }
  for (int c = 0; c < 3; ++c) (*out)[c] = value[c].get<float>();
  return Status::Ok();
}

Status ReadBool(const nlohmann::json& config, const char* key, const std::string& where, bool* out) {
  if (!config.contains(key) || config[key].is_null()) return Status::Ok();
  if (!config[key].is_boolean()) return InvalidArgument(where + ": '" + key + "' must be true or false");
  *out = config[key].get<bool>();
  return Status::Ok();
}

}  // namespace

Result<RgbImage> DecodeImage(std::span<const uint8_t> bytes, const std::string& what) {
  if (bytes.empty()) return InvalidArgument(what + ": the file is empty (0 bytes); expected a PNG or JPEG image");
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    return InvalidArgument(what + ": " + std::to_string(bytes.size()) + " bytes is too large for an image file");
  }
  const Sniffed sniffed = Sniff(bytes);
  if (sniffed.format == Format::kUnknown) {
    return InvalidArgument(what + ": not a PNG or JPEG image (the file starts with bytes " + FirstBytes(bytes) + ")");
  }
  if (sniffed.format == Format::kOther) {
    return Unsupported(what + ": " + sniffed.name + " images are not supported; convert it to PNG or JPEG");
  }
  const std::string kind = sniffed.name;
  // PNG's IHDR gives the size in the first 24 bytes; read it ourselves so that an
  // absurd size is reported as such (stb_image only says "too large").
  if (sniffed.format == Format::kPng && bytes.size() >= 24 &&
      std::equal(bytes.begin() + 12, bytes.begin() + 16, "IHDR")) {
    GR_RETURN_IF_ERROR(CheckDimensions(BigEndian32(&bytes[16]), BigEndian32(&bytes[20]), what));
  }
  if (sniffed.format == Format::kJpeg) {
    GR_RETURN_IF_ERROR(RefuseProgressiveJpeg(bytes, what));
    GR_RETURN_IF_ERROR(CheckJpegHuffmanTables(bytes, what));
  }
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(bytes.data(), length, &width, &height, &channels)) {
    return Corrupt(what + ": cannot read the " + kind + " header (stb_image: " + StbReason() +
                   "); the file is truncated or corrupt");
  }
  GR_RETURN_IF_ERROR(CheckDimensions(width, height, what));
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(bytes.data(), length, &width, &height, &channels, /*req_comp=*/3), stbi_image_free);
  if (data == nullptr) {
    return Corrupt(what + ": cannot decode the " + kind + " image (stb_image: " + StbReason() +
                   "); the file is truncated or corrupt");
  }
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(data.get(), data.get() + static_cast<size_t>(width) * height * 3);
  return image;
}

Result<RgbImage> ReadImageFile(const std::string& path) {
  GR_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  return DecodeImage(std::span<const uint8_t>(file.data(), file.size()), path);
}

RgbImage ResizeImage(const RgbImage& image, int width, int height, Resample resample) {
  GR_CHECK(width > 0 && height > 0 && image.width > 0 && image.height > 0);
  // ref: Pillow ImagingResampleInner: a pass runs only where the size changes, and
  // since Pillow 13 the vertical pass goes first when the height shrinks by more
  // than twice as many pixels as the width. The order changes the rounded
  // intermediate; Pillow <= 12 always went horizontal first, which differs from
  // this by up to ~10 levels on such tall images.
  const bool vertical_first = image.height > height && image.height - height > (image.width - width) * 2;
  if (image.width == width && image.height == height) return image;
  if (image.width == width) return ResizeVertical(image, height, resample);
  if (image.height == height) return ResizeHorizontal(image, width, resample);
  if (vertical_first) return ResizeHorizontal(ResizeVertical(image, height, resample), width, resample);
  return ResizeVertical(ResizeHorizontal(image, width, resample), height, resample);
}

Status ReadPreprocessorConfig(const std::string& path, ImagePreprocess* p) {
  GR_ASSIGN_OR_RETURN(nlohmann::json config, ParseJsonFile(path));
  if (!config.is_object()) return InvalidArgument(path + ": expected a JSON object");
  GR_RETURN_IF_ERROR(ReadBool(config, "do_resize", path, &p->do_resize));
  GR_RETURN_IF_ERROR(ReadBool(config, "do_rescale", path, &p->do_rescale));
  GR_RETURN_IF_ERROR(ReadBool(config, "do_normalize", path, &p->do_normalize));
  if (config.contains("size") && config["size"].is_object()) {
    const nlohmann::json& size = config["size"];
    if (!size.contains("height") || !size.contains("width") || !size["height"].is_number_integer() ||
        !size["width"].is_number_integer()) {
      return Unsupported(path + ": 'size' is " + size.dump() + "; only {\"height\", \"width\"} is supported");
    }
    p->height = size["height"].get<int>();
    p->width = size["width"].get<int>();
    if (p->height <= 0 || p->width <= 0 || p->height > kMaxImageSide || p->width > kMaxImageSide) {
      return InvalidArgument(path + ": 'size' " + size.dump() + " is out of range");
    }
  }
  if (config.contains("resample") && !config["resample"].is_null()) {
    const nlohmann::json& r = config["resample"];
    if (!r.is_number_integer() || (r.get<int>() != 2 && r.get<int>() != 3)) {
      return Unsupported(path + ": 'resample' " + r.dump() + " is not supported (2 = bilinear, 3 = bicubic are)");
    }
    p->resample = static_cast<Resample>(r.get<int>());
  }
  if (config.contains("rescale_factor") && !config["rescale_factor"].is_null()) {
    if (!config["rescale_factor"].is_number()) return InvalidArgument(path + ": 'rescale_factor' must be a number");
    p->rescale_factor = config["rescale_factor"].get<double>();
  }
  GR_RETURN_IF_ERROR(ReadMeanOrStd(config, "image_mean", path, &p->mean));
  GR_RETURN_IF_ERROR(ReadMeanOrStd(config, "image_std", path, &p->std));
  for (float s : p->std) {
    if (!(s != 0.0f) || !std::isfinite(s)) return InvalidArgument(path + ": 'image_std' must be finite and nonzero");
  }
  return Status::Ok();
}

std::vector<float> PreprocessImage(const RgbImage& image, const ImagePreprocess& p) {
  const bool resize = p.do_resize && (image.width != p.width || image.height != p.height);
  const RgbImage resized = resize ? ResizeImage(image, p.width, p.height, p.resample) : RgbImage{};
  const RgbImage& src = resize ? resized : image;
  const size_t plane = static_cast<size_t>(src.width) * src.height;
  std::vector<float> out(plane * 3);
  for (int c = 0; c < 3; ++c) {
    for (size_t i = 0; i < plane; ++i) {
      // ref: HF image_transforms rescale (in float64, then float32) and normalize
      // ((x - mean) / std in float32).
      float v = src.pixels[i * 3 + c];
      if (p.do_rescale) v = static_cast<float>(static_cast<double>(src.pixels[i * 3 + c]) * p.rescale_factor);
      if (p.do_normalize) v = (v - p.mean[c]) / p.std[c];
      out[c * plane + i] = v;
    }
  }
  return out;
}

}  // namespace gemmarun
