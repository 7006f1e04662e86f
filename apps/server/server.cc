// The HTTP side of `gemmarun serve`. Threads: the httplib pool answers
// requests (parsing, tokenizing, writing JSON/SSE), one compute thread loads
// the model and then steps the scheduler, and one thread waits for
// SIGINT/SIGTERM. Generated tokens travel from the scheduler's callbacks (on
// the compute thread) to the waiting HTTP thread through a per-request Channel.
#include "server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "api.h"
#include "gemmarun/engine.h"
#include "gemmarun/scheduler.h"
#include "metrics.h"

namespace gemmarun::server {

extern const char kIndexHtml[];  // web/index.html, compiled in by CMake

namespace {

using Clock = std::chrono::steady_clock;

// One scheduler event for one choice of a request.
struct Event {
  int choice = 0;
  bool finished = false;
  GeneratedToken token;  // !finished
  Status status;         // finished: ok, or why the sequence failed
  GenerateResult result;  // finished and ok
  Clock::time_point at;
};

// Per-request queue from the compute thread to the HTTP thread.
class Channel {
 public:
  void Push(Event event) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(event));
    ready_.notify_one();
  }
  bool Pop(Event* event, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
    *event = std::move(events_.front());
    events_.pop_front();
    return true;
  }
  void Abandon() { abandoned_ = true; }
  bool abandoned() const { return abandoned_; }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Event> events_;
  std::atomic<bool> abandoned_{false};
};

// What an answer accumulates per choice while events arrive.
struct ChoiceState {
  std::string pending_utf8;  // bytes of a character not complete yet
  std::string streamed;      // text sent so far
  std::vector<GeneratedToken> tokens;
  bool finished = false;
  bool first_token_seen = false;
  Clock::time_point last_token;
  Status status;
  GenerateResult result;
};

struct Job {
  GenerationPlan plan;
  std::shared_ptr<Channel> channel = std::make_shared<Channel>();
  std::vector<RequestId> ids;
  std::vector<ChoiceState> choices;
  std::string id;
  int64_t created = 0;
  Clock::time_point submitted;
  int finished = 0;
};

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Runs over the longer string whatever the contents, so timing reveals at most the length.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kResourceExhausted:
      return 429;
    default:
      return 500;
  }
}

json BytesOf(const std::string& text) {
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

class Server {
 public:
  explicit Server(const ServerOptions& options) : options_(options) {}
  int Run();

 private:
  void Routes();
  void ComputeLoop();
  bool Authorized(const httplib::Request& req) const;
  static void SendError(httplib::Response& res, const ApiError& error);
  bool RequireReady(httplib::Response& res) const;
  bool ParseBody(const httplib::Request& req, httplib::Response& res, json* body) const;

  void HandleGeneration(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  bool Submit(Job* job, ApiError* error);
  void CancelAll(Job* job);
  // Applies one event to the job; returns the text it releases for its choice (may be empty).
  std::string Absorb(Job* job, Event event);
  // Waits for the next event; false once the server is shutting down and nothing arrives.
  bool NextEvent(Job* job, Event* event);
  json LogprobContent(const std::vector<GeneratedToken>& tokens) const;
  json CompletionLogprobs(const std::vector<GeneratedToken>& tokens) const;
  std::string TokenText(int32_t id) const;
  json Usage(const Job& job) const;
  json FinalResponse(const Job& job) const;
  bool StreamJob(const std::shared_ptr<Job>& job, httplib::DataSink& sink);
  json ChunkBase(const Job& job) const;

  ServerOptions options_;
  httplib::Server http_;
  Metrics metrics_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> scheduler_;
  int64_t context_length_ = 0;
  std::string model_id_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> compute_exit_{false};
  std::atomic<bool> load_failed_{false};
  std::atomic<uint64_t> next_id_{1};
  std::thread signal_thread_;
};

void Server::ComputeLoop() {
  EngineOptions engine_options;
  engine_options.num_threads = options_.threads;
  engine_options.context_length = options_.context_length;
  engine_options.cache_type = options_.cache_type;
  engine_options.weight_dtype = options_.weight_dtype;
  engine_options.matmul_precision = options_.matmul_precision;
  engine_options.device = options_.device;
  auto engine = Engine::Load(options_.model_path, engine_options);
  Status status = engine.status();
  if (status.ok()) {
    engine_ = std::move(engine).value();
    const ModelInfo& info = engine_->info();
    context_length_ = options_.context_length > 0 ? options_.context_length : std::min<int64_t>(info.max_seq_len, 8192);
    SchedulerOptions scheduler_options;
    scheduler_options.max_sequences = options_.parallel;
    scheduler_options.context_length = context_length_;
    scheduler_options.max_queue = options_.max_queue;
    auto scheduler = engine_->NewScheduler(scheduler_options);
    status = scheduler.status();
    if (status.ok()) scheduler_ = std::move(scheduler).value();
  }
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.message().c_str());
    load_failed_ = true;
    pthread_kill(signal_thread_.native_handle(), SIGTERM);  // wakes the shutdown path
    return;
  }
  ready_ = true;
  std::fprintf(stderr, "gemmarun serve: model ready (%s, context %lld, %d parallel)\n",
               engine_->info().backend.c_str(), static_cast<long long>(context_length_), options_.parallel);
  if (stopping_) scheduler_->Shutdown();
  while (!compute_exit_) {
    Result<bool> more = scheduler_->Step();
    if (!more.ok()) {
      std::fprintf(stderr, "gemmarun serve: step failed: %s\n", more.status().message().c_str());
      scheduler_->WaitForWork(std::chrono::milliseconds(100));
    } else if (!*more) {
      scheduler_->WaitForWork(std::chrono::milliseconds(100));
    }
  }
}

bool Server::Authorized(const httplib::Request& req) const {
  if (options_.api_key.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (header.rfind(prefix, 0) != 0) return false;
  return ConstantTimeEquals(header.substr(prefix.size()), options_.api_key);
}

void Server::SendError(httplib::Response& res, const ApiError& error) {
  res.status = error.http_status;
  res.set_content(Dump(ErrorBody(error)), "application/json");
}

bool Server::RequireReady(httplib::Response& res) const {
  if (ready_ && !stopping_) return true;
  SendError(res, {503, stopping_ ? "the server is shutting down" : "the model is still loading", "", ""});
  return false;
}

bool Server::ParseBody(const httplib::Request& req, httplib::Response& res, json* body) const {
  // nlohmann stops at a NUL byte, so a document followed by one would pass as valid.
  *body = req.body.find('\0') != std::string::npos ? json(json::value_t::discarded)
                                                    : json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) {
    SendError(res, {400, "the request body is not valid JSON (UTF-8)", "", ""});
    return false;
  }
  if (!body->is_object()) {
    SendError(res, {400, "the request body must be a JSON object", "", ""});
    return false;
  }
  return true;
}

std::string Server::TokenText(int32_t id) const {
  const int32_t ids[1] = {id};
  Result<std::string> text = engine_->Detokenize(ids);
  return text.ok() ? *text : std::string();
}

json Server::LogprobContent(const std::vector<GeneratedToken>& tokens) const {
  json content = json::array();
  for (const GeneratedToken& token : tokens) {
    const std::string text = TokenText(token.id);
    json entry = {{"token", text}, {"logprob", token.logprob}, {"bytes", BytesOf(text)}};
    json top = json::array();
    for (const TokenLogprob& alternative : token.top) {
      const std::string alt = TokenText(alternative.id);
      top.push_back({{"token", alt}, {"logprob", alternative.logprob}, {"bytes", BytesOf(alt)}});
    }
    entry["top_logprobs"] = std::move(top);
    content.push_back(std::move(entry));
  }
  return content;
}

json Server::CompletionLogprobs(const std::vector<GeneratedToken>& tokens) const {
  json out = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  size_t offset = 0;
  for (const GeneratedToken& token : tokens) {
    const std::string text = TokenText(token.id);
    out["tokens"].push_back(text);
    out["token_logprobs"].push_back(token.logprob);
    json top = json::object();
    for (const TokenLogprob& alternative : token.top) top[TokenText(alternative.id)] = alternative.logprob;
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(offset);
    offset += text.size();
  }
  return out;
}

bool Server::Submit(Job* job, ApiError* error) {
  const GenerationPlan& plan = job->plan;
  job->choices.resize(plan.n);
  job->submitted = Clock::now();
  std::random_device entropy;
  const uint64_t base_seed = plan.seed_given ? plan.options.sampling.seed : (uint64_t{entropy()} << 32 | entropy());
  for (int i = 0; i < plan.n; ++i) {
    Request request;
    request.prompt = plan.prompt;
    request.image = plan.image;
    request.options = plan.options;
    request.options.sampling.seed = base_seed + static_cast<uint64_t>(i);
    std::shared_ptr<Channel> channel = job->channel;
    request.options.on_generated = [channel, i](const GeneratedToken& token) {
      Event event;
      event.choice = i;
      event.token = token;
      event.at = Clock::now();
      channel->Push(std::move(event));
      return !channel->abandoned();
    };
    request.on_finish = [channel, i](RequestId, const Result<GenerateResult>& result) {
      Event event;
      event.choice = i;
      event.finished = true;
      event.status = result.status();
      if (result.ok()) event.result = *result;
      event.at = Clock::now();
      channel->Push(std::move(event));
    };
    Result<RequestId> id = scheduler_->Submit(std::move(request));
    if (!id.ok()) {
      CancelAll(job);
      *error = {HttpStatusFor(id.status()), id.status().message(), "", ""};
      if (error->http_status == 429) error->code = "queue_full";
      return false;
    }
    job->ids.push_back(*id);
  }
  metrics_.AddPromptTokens(static_cast<int64_t>(plan.prompt.size()));
  return true;
}

void Server::CancelAll(Job* job) {
  job->channel->Abandon();
  for (RequestId id : job->ids) scheduler_->Cancel(id);
}

std::string Server::Absorb(Job* job, Event event) {
  ChoiceState& choice = job->choices[event.choice];
  if (event.finished) {
    choice.finished = true;
    ++job->finished;
    choice.status = event.status;
    choice.result = std::move(event.result);
    if (!choice.status.ok()) return {};
    // Whatever the callbacks did not deliver (a held-back tail) is in the result's text.
    std::string rest = TakeCompleteUtf8(&choice.pending_utf8) + choice.pending_utf8;
    choice.pending_utf8.clear();
    const std::string& full = choice.result.text;
    const size_t have = choice.streamed.size() + rest.size();
    if (full.size() > have && full.compare(0, choice.streamed.size(), choice.streamed) == 0) {
      rest = full.substr(choice.streamed.size());
    }
    choice.streamed += rest;
    metrics_.AddGeneratedTokens(static_cast<int64_t>(choice.result.tokens.size()));
    return rest;
  }
  if (event.token.id >= 0) {
    if (!choice.first_token_seen) {
      choice.first_token_seen = true;
      metrics_.time_to_first_token().Observe(std::chrono::duration<double>(event.at - job->submitted).count());
    } else {
      metrics_.inter_token_latency().Observe(std::chrono::duration<double>(event.at - choice.last_token).count());
    }
    choice.last_token = event.at;
    if (job->plan.logprobs) choice.tokens.push_back(event.token);
  }
  choice.pending_utf8 += event.token.text;
  std::string text = TakeCompleteUtf8(&choice.pending_utf8);
  choice.streamed += text;
  return text;
}

bool Server::NextEvent(Job* job, Event* event) {
  while (true) {
    if (job->channel->Pop(event, std::chrono::milliseconds(250))) return true;
    if (compute_exit_) return false;  // nothing will arrive any more
  }
}

json Server::Usage(const Job& job) const {
  int64_t completion = 0;
  int64_t cached = 0;
  for (const ChoiceState& choice : job.choices) completion += static_cast<int64_t>(choice.result.tokens.size());
  if (!job.choices.empty()) cached = job.choices[0].result.cached_tokens;
  const int64_t prompt = static_cast<int64_t>(job.plan.prompt.size());
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json Server::FinalResponse(const Job& job) const {
  const bool chat = job.plan.endpoint == Endpoint::kChat;
  json choices = json::array();
  for (size_t i = 0; i < job.choices.size(); ++i) {
    const ChoiceState& choice = job.choices[i];
    json entry = {{"index", i}, {"finish_reason", FinishReason(choice.result.stop_reason)}};
    if (chat) {
      entry["message"] = {{"role", "assistant"}, {"content", choice.streamed}};
      entry["logprobs"] = job.plan.logprobs ? json{{"content", LogprobContent(choice.tokens)}} : json(nullptr);
    } else {
      entry["text"] = choice.streamed;
      entry["logprobs"] = job.plan.logprobs ? CompletionLogprobs(choice.tokens) : json(nullptr);
    }
    choices.push_back(std::move(entry));
  }
  return {{"id", job.id},
          {"object", chat ? "chat.completion" : "text_completion"},
          {"created", job.created},
          {"model", model_id_},
          {"system_fingerprint", "gemmarun"},
          {"choices", std::move(choices)},
          {"usage", Usage(job)}};
}

json Server::ChunkBase(const Job& job) const {
  const bool chat = job.plan.endpoint == Endpoint::kChat;
  return {{"id", job.id},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", job.created},
          {"model", model_id_},
          {"system_fingerprint", "gemmarun"}};
}

bool Server::StreamJob(const std::shared_ptr<Job>& job, httplib::DataSink& sink) {
  const bool chat = job->plan.endpoint == Endpoint::kChat;
  auto send = [&](const json& chunk) {
    const std::string line = "data: " + Dump(chunk) + "\n\n";
    return sink.write(line.data(), line.size());
  };
  auto choice_chunk = [&](int index, json delta_or_text, const json& finish, json logprobs) {
    json chunk = ChunkBase(*job);
    json entry = {{"index", index}, {"finish_reason", finish}, {"logprobs", std::move(logprobs)}};
    if (chat) entry["delta"] = std::move(delta_or_text);
    else entry["text"] = std::move(delta_or_text);
    chunk["choices"] = json::array({std::move(entry)});
    if (job->plan.include_usage) chunk["usage"] = nullptr;
    return send(chunk);
  };
  bool alive = true;
  if (chat) {
    for (int i = 0; i < job->plan.n && alive; ++i) {
      alive = choice_chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr);
    }
  }
  while (alive && job->finished < job->plan.n) {
    Event event;
    if (!NextEvent(job.get(), &event)) {
      alive = false;
      break;
    }
    const int index = event.choice;
    const bool finished = event.finished;
    const bool token_event = !finished && event.token.id >= 0;
    GeneratedToken token = event.token;
    std::string text = Absorb(job.get(), std::move(event));
    ChoiceState& choice = job->choices[index];
    if (finished && !choice.status.ok()) {
      ApiError error{HttpStatusFor(choice.status), choice.status.message(), "", ""};
      alive = send(ErrorBody(error));
      continue;
    }
    json logprobs = nullptr;
    if (job->plan.logprobs && token_event) {
      logprobs = chat ? json{{"content", LogprobContent({token})}} : CompletionLogprobs({token});
    }
    if (!text.empty() || !logprobs.is_null()) {
      alive = choice_chunk(index, chat ? json{{"content", text}} : json(text), nullptr, std::move(logprobs));
    }
    if (alive && finished) {
      alive = choice_chunk(index, chat ? json::object() : json(""), FinishReason(choice.result.stop_reason), nullptr);
    }
  }
  if (alive && job->plan.include_usage) {
    json chunk = ChunkBase(*job);
    chunk["choices"] = json::array();
    chunk["usage"] = Usage(*job);
    alive = send(chunk);
  }
  if (alive) {
    static const std::string kDone = "data: [DONE]\n\n";
    alive = sink.write(kDone.data(), kDone.size());
  }
  if (!alive) {
    CancelAll(job.get());  // the releaser counts it
    return false;
  }
  sink.done();
  return true;
}

void Server::HandleGeneration(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  if (!RequireReady(res)) return;
  json body;
  if (!ParseBody(req, res, &body)) return;
  auto job = std::make_shared<Job>();
  ApiError error;
  const ApiContext context{engine_.get(), context_length_};
  if (!ParseGeneration(context, endpoint, body, &job->plan, &error) || !Submit(job.get(), &error)) {
    SendError(res, error);
    return;
  }
  job->id = std::string(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_++);
  job->created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                     .count();
  if (job->plan.stream) {
    metrics_.AddInFlight(1);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job](size_t, httplib::DataSink& sink) { return StreamJob(job, sink); },
        [this, job](bool) {
          // Runs however the response ended, also when the client was gone before the first byte.
          if (job->finished < job->plan.n) {
            metrics_.AddCancelled();
            CancelAll(job.get());
          }
          metrics_.AddInFlight(-1);
        });
    return;
  }
  metrics_.AddInFlight(1);
  while (job->finished < job->plan.n) {
    Event event;
    if (!NextEvent(job.get(), &event)) break;
    Absorb(job.get(), std::move(event));
  }
  metrics_.AddInFlight(-1);
  if (job->finished < job->plan.n) {
    CancelAll(job.get());
    SendError(res, {503, "the server is shutting down", "", ""});
    return;
  }
  for (const ChoiceState& choice : job->choices) {
    if (!choice.status.ok()) {
      SendError(res, {HttpStatusFor(choice.status), choice.status.message(), "", ""});
      return;
    }
  }
  res.set_content(Dump(FinalResponse(*job)), "application/json");
}

void Server::Routes() {
  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // The page itself carries no data (it asks for the key); /health is for load balancers.
    const bool public_path = req.path == "/health" || (req.path == "/" && req.method == "GET");
    if (public_path || Authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
    ApiError error{401, "invalid or missing API key: send the header 'Authorization: Bearer KEY'", "",
                   "invalid_api_key"};
    SendError(res, error);
    return httplib::Server::HandlerResponse::Handled;
  });
  http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message;
    if (res.status == 404) message = "no such endpoint: " + req.method + " " + req.path;
    else if (res.status == 413) message = "the request body is larger than the limit of " +
                                          std::to_string(options_.max_body_bytes) + " bytes";
    else message = "the request could not be handled (HTTP " + std::to_string(res.status) + ")";
    SendError(res, {res.status, message, "", ""});
  });
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, {500, "internal error while answering the request", "", ""});
  });
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.CountResponse(req.path, res.status);
  });
  http_.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self' "
                                              "'unsafe-inline'; script-src 'self' 'unsafe-inline'");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_content(kIndexHtml, "text/html; charset=utf-8");
  });
  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (ready_ && !stopping_) {
      res.set_content(R"({"status":"ok"})", "application/json");
    } else {
      RequireReady(res);
    }
  });
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const SchedulerStats stats = ready_ ? scheduler_->stats() : SchedulerStats{};
    res.set_content(metrics_.Render(stats, ready_), "text/plain; version=0.0.4");
  });
  auto models = [this](const httplib::Request&, httplib::Response& res) {
    if (!RequireReady(res)) return;
    const ModelInfo& info = engine_->info();
    json model = {{"id", model_id_},
                  {"object", "model"},
                  {"created", 0},
                  {"owned_by", "gemmarun"},
                  {"meta",
                   {{"family", info.family},
                    {"model_type", info.model_type},
                    {"context_length", context_length_},
                    {"parallel", options_.parallel},
                    {"vocab_size", info.vocab_size},
                    {"num_layers", info.num_layers},
                    {"weight_bytes", info.weight_bytes},
                    {"backend", info.backend},
                    {"takes_image", info.takes_image},
                    {"has_chat_template", engine_->SpecialTokenId("<start_of_turn>").ok() && !info.takes_image}}}};
    res.set_content(Dump({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  };
  http_.Get("/v1/models", models);
  http_.Get("/models", models);
  http_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGeneration(req, res, Endpoint::kChat);
  });
  http_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGeneration(req, res, Endpoint::kCompletion);
  });
  http_.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (!RequireReady(res)) return;
    json body;
    if (!ParseBody(req, res, &body)) return;
    const auto content = body.find("content");
    if (content == body.end() || !content->is_string()) {
      return SendError(res, {400, "content must be a string", "content", ""});
    }
    bool add_special = false;
    if (auto it = body.find("add_special"); it != body.end() && !it->is_null()) {
      if (!it->is_boolean()) return SendError(res, {400, "add_special must be true or false", "add_special", ""});
      add_special = it->get<bool>();
    }
    Result<std::vector<int32_t>> ids = engine_->Tokenize(content->get<std::string>(), add_special);
    if (!ids.ok()) return SendError(res, {400, ids.status().message(), "content", ""});
    res.set_content(Dump({{"tokens", *ids}}), "application/json");
  });
  http_.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (!RequireReady(res)) return;
    json body;
    if (!ParseBody(req, res, &body)) return;
    const auto tokens = body.find("tokens");
    std::vector<int32_t> ids;
    const int vocab = engine_->info().vocab_size;
    bool valid = tokens != body.end() && tokens->is_array();
    if (valid) {
      for (const json& id : *tokens) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab) {
          valid = false;
          break;
        }
        ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
    }
    if (!valid) {
      return SendError(res, {400, "tokens must be a list of token ids in [0, " + std::to_string(vocab) + ")",
                             "tokens", ""});
    }
    Result<std::string> text = engine_->Detokenize(ids);
    if (!text.ok()) return SendError(res, {400, text.status().message(), "tokens", ""});
    res.set_content(Dump({{"content", *text}}), "application/json");
  });
}

int Server::Run() {
  if (Status device = CheckDevice(options_.device); !device.ok()) {
    std::fprintf(stderr, "error: %s\n", device.message().c_str());
    return 1;
  }
  if (options_.parallel < 1 || options_.max_queue < 0 || options_.timeout_seconds < 1 || options_.port < 0 ||
      options_.port > 65535) {
    std::fprintf(stderr, "error: --parallel and --timeout must be >= 1, --max-queue >= 0, --port in [0, 65535]\n");
    return 1;
  }
  std::error_code ec;
  if (!std::filesystem::exists(options_.model_path, ec)) {
    std::fprintf(stderr, "error: %s: no such file or folder\n", options_.model_path.c_str());
    return 1;
  }
  model_id_ = std::filesystem::path(options_.model_path).filename().string();
  if (model_id_.empty()) model_id_ = std::filesystem::path(options_.model_path).parent_path().filename().string();
  if (const size_t dot = model_id_.rfind(".gguf"); dot != std::string::npos && dot + 5 == model_id_.size()) {
    model_id_.erase(dot);
  }

  // Signals go to one thread that starts the shutdown; every other thread
  // (httplib's pool, the engine's workers) inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not the end of the server

  Routes();
  const size_t pool_threads = std::max<size_t>(64, options_.parallel + options_.max_queue + 32);
  http_.new_task_queue = [pool_threads] { return new httplib::ThreadPool(pool_threads); };
  // httplib's default sets SO_REUSEPORT, which would let a second server (or another user's
  // process) bind the same port and take a share of the connections.
  http_.set_socket_options([](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http_.set_payload_max_length(options_.max_body_bytes);
  http_.set_read_timeout(options_.timeout_seconds, 0);
  http_.set_write_timeout(options_.timeout_seconds, 0);
  http_.set_keep_alive_timeout(5);
  int port = options_.port;
  const bool bound = port == 0 ? (port = http_.bind_to_any_port(options_.host)) > 0
                               : http_.bind_to_port(options_.host, port);
  if (!bound) {
    std::fprintf(stderr, "error: cannot listen on %s:%d (address in use or not available)\n", options_.host.c_str(),
                 options_.port);
    return 1;
  }
  std::fprintf(stderr, "gemmarun serve: listening on http://%s:%d (loading %s)\n", options_.host.c_str(), port,
               options_.model_path.c_str());

  signal_thread_ = std::thread([this, signals] {
    int received = 0;
    sigwait(&signals, &received);
    if (!load_failed_) std::fprintf(stderr, "gemmarun serve: shutting down (signal %d)\n", received);
    stopping_ = true;
    // Running requests end as cancelled; their HTTP threads then finish, and the pool can stop.
    if (ready_) scheduler_->Shutdown();
    http_.stop();
  });
  std::thread compute([this] { ComputeLoop(); });
  http_.listen_after_bind();
  if (!stopping_) pthread_kill(signal_thread_.native_handle(), SIGTERM);  // listen ended on its own
  compute_exit_ = true;
  if (ready_) scheduler_->Shutdown();
  compute.join();
  signal_thread_.join();
  scheduler_.reset();
  engine_.reset();
  return load_failed_ ? 1 : 0;
}

}  // namespace

int RunServer(const ServerOptions& options) {
  Server server(options);
  return server.Run();
}

}  // namespace gemmarun::server
