// `gemmarun serve`: an OpenAI-compatible HTTP server over the public batch API
// (include/gemmarun/scheduler.h). One compute thread steps the scheduler; HTTP
// threads only submit, cancel and wait on per-request event queues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gemmarun::server {

struct ServerOptions {
  std::string model_path;
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (printed at start)
  std::string api_key;                   // empty: no authentication
  int parallel = 8;                      // sequences running at once
  int64_t context_length = 0;            // per sequence; 0: min(model maximum, 8192)
  std::string cache_type;                // EngineOptions::cache_type
  std::string device = "cpu";
  int threads = 0;
  int max_queue = 64;                    // waiting requests beyond which new ones get 429
  int timeout_seconds = 600;             // socket read/write timeout
  size_t max_body_bytes = 16u << 20;     // larger request bodies get 413
  std::string weight_dtype;              // EngineOptions::weight_dtype
  std::string matmul_precision;          // EngineOptions::matmul_precision
};

// Runs until SIGINT/SIGTERM; returns the process exit code (0 after a clean
// shutdown, 1 with an "error: ..." line on stderr when the model or the
// address cannot be used).
int RunServer(const ServerOptions& options);

}  // namespace gemmarun::server
