// The device plumbing without a GPU: a backend whose memory claims to be a
// device (cuda:7) but is host memory, and whose ops are the CPU backend's. Every
// family must then run with the same logits bit for bit as on the CPU, which
// checks that the weights, the KV pool, the recurrent state and the workspace
// are allocated through the backend (the ops abort on a tensor of another
// device), that image features and logits cross through Upload/Download, and
// that the pass synchronizes once.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "runtime/model_source.h"
#include "testing/batch_runner.h"
#include "testing/forwarding_backend.h"

namespace gemmarun {
namespace {

constexpr Device kFakeDevice{Device::Kind::kCuda, 7};

class FakeDeviceMemory final : public DeviceMemory {
 public:
  Device device() const override { return kFakeDevice; }
  Result<void*> Allocate(size_t bytes) override {
    if (capacity_bytes > 0 && allocated_bytes + bytes > capacity_bytes) {
      return ResourceExhausted("fake device full");
    }
    ++allocations;
    allocated_bytes += bytes;
    return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  }
  void Free(void* ptr) override {
    ++frees;
    std::free(ptr);
  }
  Status Upload(void* dst, const void* host_src, size_t bytes) override {
    ++uploads;
    std::memcpy(dst, host_src, bytes);
    return Status::Ok();
  }
  Status Download(void* host_dst, const void* src, size_t bytes) override {
    ++downloads;
    std::memcpy(host_dst, src, bytes);
    return Status::Ok();
  }
  void Copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void Zero(void* dst, size_t bytes) override {
    ++zero_fills;
    std::memset(dst, 0, bytes);
  }
  Status Synchronize() override {
    ++synchronizes;
    return std::exchange(pending_error, Status::Ok());
  }
  Status pending_error;       // what the next Synchronize reports (an asynchronous kernel failure)
  size_t capacity_bytes = 0;  // 0: unlimited
  int allocations = 0, frees = 0, uploads = 0, downloads = 0, zero_fills = 0, synchronizes = 0;
  size_t allocated_bytes = 0;
};

// The CPU backend's ops on the fake device's (host) memory.
class FakeDeviceBackend final : public testing::ForwardingBackend {
 public:
  explicit FakeDeviceBackend(std::shared_ptr<FakeDeviceMemory> memory)
      : ForwardingBackend(CreateCpuBackend(2, MatMulPrecision::kF32)), memory_(std::move(memory)) {}
  const char* name() const override { return "fake-device"; }
  DeviceMemory& memory() override { return *memory_; }

 private:
  std::shared_ptr<FakeDeviceMemory> memory_;
};

std::string FixtureDir(const std::string& name) { return std::string(GR_TEST_DATA_DIR) + "/" + name; }

// A prompt of the fixture's vocabulary (ids below 512 are ordinary tokens in every fixture).
const std::vector<int32_t> kPrompt = {2, 369, 137, 41, 124, 111, 365, 17, 250, 3, 99, 400, 12, 77};

// The logits of kPrompt fed in chunks of 5, then one more token, on `backend`.
std::vector<float> RunPrompt(const Model& model, DeviceMemory& memory) {
  testing::BatchRunner runner(model, 1, 64, DType::kF32, 64, memory);
  std::vector<float> logits = runner.Feed(0, kPrompt, 5);
  const std::vector<float> last = runner.Feed(0, {123}, 1);
  logits.insert(logits.end(), last.begin(), last.end());
  return logits;
}

class DeviceBackendTest : public ::testing::TestWithParam<const char*> {};

TEST_P(DeviceBackendTest, SameLogitsAsTheCpuWithEverythingOnTheDevice) {
  std::unique_ptr<Backend> cpu = CreateCpuBackend(2, MatMulPrecision::kF32);
  auto on_cpu = LoadModel(FixtureDir(GetParam()), cpu.get(), nullptr);
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status().message();
  const std::vector<float> expected = RunPrompt(*on_cpu->model, HostMemory());
  ASSERT_FALSE(expected.empty());

  auto memory = std::make_shared<FakeDeviceMemory>();
  FakeDeviceBackend device(memory);
  auto on_device = LoadModel(FixtureDir(GetParam()), &device, nullptr);
  ASSERT_TRUE(on_device.ok()) << on_device.status().message();
  const Model& model = *on_device->model;
  // Every weight was uploaded: none is left on the host.
  int weights = 0;
  ForEachWeight(model.config(), model.weights(), [&](const WeightSpec& spec) {
    if (spec.tensor->empty()) return;
    ++weights;
    EXPECT_EQ(spec.tensor->device(), kFakeDevice) << spec.name;
  });
  EXPECT_EQ(memory->uploads, weights);
  const int uploads_after_load = memory->uploads;
  const std::vector<float> actual = RunPrompt(model, *memory);
  EXPECT_EQ(actual, expected);
  // 3 chunks + 1 token: one synchronize and one logits download per pass, no other upload.
  EXPECT_EQ(memory->downloads, 4);
  EXPECT_GE(memory->synchronizes, 4);
  EXPECT_EQ(memory->uploads, uploads_after_load);
}

INSTANTIATE_TEST_SUITE_P(Families, DeviceBackendTest,
                         ::testing::Values("gemma1_mha", "gemma2", "gemma3", "recurrentgemma"));

// PaliGemma: the vision tower runs on the device and hands back host features;
// the prefix pass uploads them over the image tokens' embeddings.
TEST(DeviceBackendTest, PaliGemmaImageFeaturesCrossToTheDevice) {
  std::unique_ptr<Backend> cpu = CreateCpuBackend(2, MatMulPrecision::kF32);
  auto on_cpu = LoadModel(FixtureDir("paligemma"), cpu.get(), nullptr);
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status().message();
  auto memory = std::make_shared<FakeDeviceMemory>();
  FakeDeviceBackend device(memory);
  auto on_device = LoadModel(FixtureDir("paligemma"), &device, nullptr);
  ASSERT_TRUE(on_device.ok()) << on_device.status().message();

  const ModelConfig& config = on_cpu->model->config();
  const VisionConfig& v = config.vision;
  std::vector<float> pixels(static_cast<size_t>(v.num_channels) * v.image_size * v.image_size);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>(static_cast<int>(i * 37 % 200) - 100) / 100;
  const TensorView pixel_view{pixels.data(), DType::kF32, Shape{v.num_channels, v.image_size, v.image_size}};
  auto cpu_features = on_cpu->model->EncodeImage(pixel_view);
  ASSERT_TRUE(cpu_features.ok()) << cpu_features.status().message();
  const int downloads_before = memory->downloads;
  auto device_features = on_device->model->EncodeImage(pixel_view);
  ASSERT_TRUE(device_features.ok()) << device_features.status().message();
  EXPECT_TRUE(device_features->on_host());
  EXPECT_EQ(memory->downloads, downloads_before + 1);
  ASSERT_EQ(device_features->bytes(), cpu_features->bytes());
  EXPECT_EQ(std::memcmp(device_features->data(), cpu_features->data(), cpu_features->bytes()), 0);

  std::vector<int32_t> prompt(config.num_image_tokens, config.image_token_id);
  prompt.insert(prompt.end(), {config.bos_id, 369, 137, 41});
  const auto run = [&](const Model& model, DeviceMemory& pool_memory, const Tensor& features) {
    testing::BatchRunner runner(model, 1, 64, DType::kF32, 64, pool_memory);
    const TensorView view = features.view();
    testing::BatchRunner::Piece piece{0, prompt, static_cast<int64_t>(prompt.size()), &view};
    auto out = runner.Step({piece});
    return out.empty() ? std::vector<float>{} : out[0];
  };
  const std::vector<float> expected = run(*on_cpu->model, HostMemory(), *cpu_features);
  ASSERT_FALSE(expected.empty());
  const int uploads_before = memory->uploads;
  EXPECT_EQ(run(*on_device->model, *memory, *device_features), expected);
  EXPECT_EQ(memory->uploads, uploads_before + config.num_image_tokens);  // one per image row
}

// A device reports kernel failures asynchronously: the pass that ran them
// returns the error as a Status instead of logits.
TEST(DeviceBackendTest, AnAsynchronousDeviceErrorFailsTheForwardPass) {
  auto memory = std::make_shared<FakeDeviceMemory>();
  FakeDeviceBackend device(memory);
  auto loaded = LoadModel(FixtureDir("gemma2"), &device, nullptr);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const Model& model = *loaded->model;
  auto pool = KvPool::Create(model.config(), testing::BatchRunner::ShapeFor(model.config(), 1, 32, DType::kF32, 32),
                             *memory);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  auto workspace = model.NewWorkspace(32, 32);
  ASSERT_TRUE(workspace.ok()) << workspace.status().message();
  const std::vector<int32_t> tokens = {2, 369, 137};
  const std::vector<int32_t> table = {0, 1};
  SequenceChunk chunk;
  chunk.tokens = tokens;
  chunk.block_tables.assign(KvGroups(model.config()).size(), std::span<const int32_t>(table));
  chunk.logits = SequenceChunk::Logits::kLast;
  ASSERT_TRUE(model.Forward(std::span<const SequenceChunk>(&chunk, 1), *pool, **workspace).ok());
  memory->pending_error = Internal("cuda: stream: an illegal memory access was encountered");
  auto failed = model.Forward(std::span<const SequenceChunk>(&chunk, 1), *pool, **workspace);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("illegal memory access"), std::string::npos) << failed.status().message();
}

// A device too small for the KV pool or the activations is a Status naming it.
TEST(DeviceBackendTest, AFullDeviceIsResourceExhausted) {
  auto memory = std::make_shared<FakeDeviceMemory>();
  FakeDeviceBackend device(memory);
  auto loaded = LoadModel(FixtureDir("gemma2"), &device, nullptr);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const Model& model = *loaded->model;
  memory->capacity_bytes = memory->allocated_bytes + 4096;
  auto pool = KvPool::Create(model.config(), testing::BatchRunner::ShapeFor(model.config(), 4, 256, DType::kF32, 64),
                             *memory);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(pool.status().message().find("cuda:7"), std::string::npos) << pool.status().message();
  auto workspace = model.NewWorkspace(512, 512);
  ASSERT_FALSE(workspace.ok());
  EXPECT_NE(workspace.status().message().find("cuda:7"), std::string::npos) << workspace.status().message();
}

}  // namespace
}  // namespace gemmarun
