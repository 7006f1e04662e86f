// config.json -> ModelConfig, then what `inspect` computes from it (module tree,
// parameter counts, KV-cache sizes), which must neither overflow nor crash for
// any config the parser accepts.
#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/inspect.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = ParseHfConfig(text, "config.json");
  if (!config.ok()) return 0;
  // Trees of thousands of layers are valid but slow to print; the counts are the risk.
  if (config->num_layers() <= 64 && config->vision.num_layers <= 64) {
    (void)InspectModelConfig(*config, nullptr, {1, 8192, int64_t{1} << 30});
  }
  return 0;
}
