// `gemmarun serve`: flags only; the server itself is apps/server.
#include <cstdlib>

#include "commands.h"
#include "common.h"
#include "server/server.h"

namespace gemmarun::cli {

void AddServeCommand(CLI::App& root, int* exit_code) {
  struct ServeFlags {
    ModelFlags model;
    server::ServerOptions server;
    double max_body_mib = 16.0;
  };
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* app = root.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API and a web chat page");
  flags->model.Add(app);
  server::ServerOptions& s = flags->server;
  app->add_option("--host", s.host, "address to listen on (only this machine by default)")->capture_default_str();
  app->add_option("--port", s.port, "TCP port; 0 picks a free one")->check(CLI::Range(0, 65535))->capture_default_str();
  app->add_option("--api-key", s.api_key,
                  "require 'Authorization: Bearer KEY' on every endpoint but /health (default: $GEMMARUN_API_KEY)");
  app->add_option("--parallel", s.parallel, "sequences decoded together")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--max-queue", s.max_queue, "waiting requests beyond which new ones get HTTP 429 (0: no limit)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app->add_option("--timeout", s.timeout_seconds, "socket read/write timeout in seconds")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--max-body-mib", flags->max_body_mib, "request bodies above this many MiB get HTTP 413")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app->footer(
      "Endpoints: POST /v1/chat/completions, /v1/completions, /tokenize, /detokenize; GET /v1/models, /health,\n"
      "/metrics, and / (a chat page). Stops cleanly on Ctrl-C / SIGTERM.\n"
      "Examples:\n"
      "  gemmarun serve -m model.gguf --port 8080\n"
      "  GEMMARUN_API_KEY=secret gemmarun serve -m ./gemma-2b-it --parallel 16 -c 4096\n"
      "  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
      "       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 32}'");
  app->callback([flags, exit_code] {
    server::ServerOptions options = flags->server;
    options.model_path = flags->model.model;
    options.threads = flags->model.threads;
    options.context_length = flags->model.context;
    options.weight_dtype = flags->model.dtype;
    options.matmul_precision = flags->model.matmul_precision;
    options.cache_type = flags->model.cache_type;  // --cache-type and --device come with the model flags
    auto device = DeviceForGpuLayers(flags->model.gpu_layers, flags->model.device);
    if (!device.ok()) {
      *exit_code = Fail(device.status());
      return;
    }
    options.device = *device;
    options.max_body_bytes = static_cast<size_t>(flags->max_body_mib * 1024 * 1024);
    if (options.api_key.empty()) {
      if (const char* key = std::getenv("GEMMARUN_API_KEY")) options.api_key = key;
    }
    *exit_code = server::RunServer(options);
  });
}

}  // namespace gemmarun::cli
