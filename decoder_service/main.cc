// icae-decoder: the frozen LLM generating from memory slots plus a prompt, over gRPC.
//
//   icae-decoder --model DIR --adapter PATH [--also_accept PATH,...] [--listen 0.0.0.0:50052]
//                [--metrics_listen 0.0.0.0:9092] [--max_running 16] [--max_kv_tokens 65536] ...
//
// Start-up: the port opens at once with health NOT_SERVING ("listening on HOST:PORT" and
// "metrics on HOST:PORT" on stdout), the model loads, then health turns SERVING. SIGTERM or
// SIGINT drains: health NOT_SERVING, new calls UNAVAILABLE, running generations get up to
// --drain_seconds to finish, then the process exits 0. Exit 2 on bad flags, 1 when the model
// cannot be loaded or the port bound.

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/flags.h"
#include "common/base/logging.h"
#include "common/base/process_setup.h"
#include "common/model/runtime_options.h"
#include "common/model/slot_decoder.h"
#include "common/serving/server_flags.h"
#include "common/serving/server_runner.h"
#include "common/store/store_metrics.h"
#include "common/store/store_options.h"
#include "decoder_service/engine/engine.h"
#include "decoder_service/server/decoder_metrics.h"
#include "decoder_service/server/decoder_service.h"
#include "decoder_service/server/request_convert.h"

namespace icae::decoder {
namespace {

constexpr char kProgram[] = "icae-decoder";

int UsageError(const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", kProgram, std::string(status.message()).c_str());
  return 2;
}

int Run(int argc, char** argv) {
  icae::KeepFreedMemoryForReuse();
  ServerFlags server_flags;
  EngineOptions engine_options;
  FlagSet flags("icae-decoder --model DIR --adapter PATH [options]");
  RegisterServerFlags(flags, "0.0.0.0:50052", "0.0.0.0:9092", &server_flags);
  std::vector<std::string> also_accept;
  flags.StringList("also_accept", &also_accept,
                   "more adapters of the same base whose slots are read too (e.g. a KV adapter "
                   "beside an embedding one; --adapter's special tokens serve the templates)");
  flags.Int("max_running", &engine_options.max_running, "sequences decoding together");
  flags.Int64("max_kv_tokens", &engine_options.max_kv_tokens,
              "KV-cache positions: the pool of KV blocks allocated at start-up (rounded up to "
              "whole blocks); running sequences hold blocks as they grow, kept context prefixes "
              "hold theirs while they exist");
  flags.Int("kv_block_tokens", &engine_options.kv_block_tokens,
            "positions per KV block: the unit a cache takes from the pool (at admission, then "
            "as it grows)");
  flags.Int("max_waiting", &engine_options.max_waiting,
            "requests waiting beyond the free running slots; more are RESOURCE_EXHAUSTED");
  flags.Int("max_context_tokens", &engine_options.max_context_tokens,
            "longest context + generation of a request (0 = the model's "
            "max_position_embeddings)");
  flags.Int("max_new_tokens", &engine_options.max_new_tokens,
            "default and limit of a request's max_new_tokens");
  flags.Int("prefill_chunk_tokens", &engine_options.prefill_chunk_tokens,
            "context positions prefilled per scheduler step, between decode steps (0 = a "
            "context in one piece)");
  flags.Int("mixed_step_rows", &engine_options.mixed_step_rows,
            "with chunking, while sequences run: rows of one decode step in all, running "
            "sequences' and a new context's positions riding along (0 = prefill chunks as steps "
            "of their own)");
  flags.Int64("prefix_cache_bytes", &engine_options.prefix_cache_bytes,
              "bytes of context-prefix KV kept for later requests over the same slots "
              "(slot-prefix reuse; 0 = off)");
  StreamLimits stream_limits;
  double stream_idle_seconds = absl::ToDoubleSeconds(stream_limits.idle_timeout);
  flags.Int("max_streams", &stream_limits.max_open,
            "GenerateStream calls open at once; more are RESOURCE_EXHAUSTED");
  flags.Double("stream_idle_seconds", &stream_idle_seconds,
               "a stream whose client takes no chunk for this long is cancelled");
  SlotStoreFlags store_flags;
  RegisterSlotStoreFlags(flags, /*writer=*/false, &store_flags);
  ParseFlagsOrExit(flags, argc, argv);
  if (absl::Status s = ValidateServerFlags(server_flags); !s.ok()) return UsageError(s);
  absl::StatusOr<std::optional<SlotStoreOptions>> store_options =
      SlotStoreOptionsFromFlags(store_flags);
  if (!store_options.ok()) return UsageError(store_options.status());
  if (!(stream_idle_seconds >= 0.1 && stream_idle_seconds <= 1e7)) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--stream_idle_seconds ", stream_idle_seconds, " is not in 0.1..1e7")));
  }
  stream_limits.idle_timeout = absl::Seconds(stream_idle_seconds);
  if (absl::Status s = stream_limits.Validate(); !s.ok()) return UsageError(s);
  engine_options.threads = server_flags.runtime.threads;
  if (absl::Status s = engine_options.Validate(INT_MAX); !s.ok()) return UsageError(s);
  const RuntimeOptions& runtime_options = server_flags.runtime;
  absl::StatusOr<Runtime> runtime = ResolveRuntime(runtime_options);
  if (!runtime.ok()) return UsageError(runtime.status());

  std::atomic<Engine*> live_engine{nullptr};
  ServerRunnerOptions runner_options;
  runner_options.metrics_service = "decoder";
  runner_options.grpc_services = {"icae.v1.Decoder"};
  runner_options.effective_flags = flags.Effective();
  runner_options.on_drain = [&live_engine] {
    if (Engine* engine = live_engine.load(); engine != nullptr) engine->Drain();
  };
  absl::StatusOr<std::unique_ptr<ServerRunner>> runner =
      ServerRunner::Create(server_flags, std::move(runner_options));
  if (!runner.ok()) return UsageError(runner.status());
  StreamWatch streams(stream_limits, &(*runner)->metrics());
  DecoderService service(&(*runner)->gate(), &streams);
  if (absl::Status s = (*runner)->Start({&service}); !s.ok()) {
    ICAE_LOG(ERROR) << s;
    return 1;
  }

  const absl::Time load_start = absl::Now();
  ConfigureThreads(server_flags.runtime.threads);
  absl::StatusOr<std::unique_ptr<SlotDecoder>> model =
      SlotDecoder::Load(server_flags.model, server_flags.adapter, *runtime, also_accept);
  if (!model.ok()) {
    ICAE_LOG(ERROR) << "loading the model: " << model.status();
    (*runner)->Stop();
    return 1;
  }
  const ModelConfig& config = (*model)->config();
  if (absl::Status s = engine_options.Validate(config.max_position_embeddings); !s.ok()) {
    (*runner)->Stop();
    return UsageError(s);
  }
  DecoderMetrics metrics((*runner)->metrics().registry(), (*runner)->metrics().prefix(),
                         engine_options.KvLimit(), engine_options.kv_block_tokens);
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(model->get(), engine_options, &metrics);
  if (!engine.ok()) {
    ICAE_LOG(ERROR) << engine.status();
    (*runner)->Stop();
    return 1;
  }
  const int context_limit = engine_options.ContextLimit(config.max_position_embeddings);
  ServerDescription description{
      server_flags.model, server_flags.runtime.device,    server_flags.runtime.CanonicalDtype(),
      ICAE_VERSION,       server_flags.max_message_bytes, store_options->has_value()};
  v1::DecoderInfo info = MakeDecoderInfo(**model, engine_options, description);
  // Slot handles: fetched from the shared store (not reached here; a Redis that is down only
  // makes handle requests UNAVAILABLE).
  std::optional<StoreMetrics> store_metrics;
  std::unique_ptr<SlotHandleFetcher> handles;
  if (store_options->has_value()) {
    store_metrics.emplace((*runner)->metrics().registry(), (*runner)->metrics().prefix());
    handles = std::make_unique<SlotHandleFetcher>(**store_options, &*store_metrics);
    ICAE_LOG(INFO) << "slot store " << (*store_options)->redis.Describe();
  }
  GenerateBackend backend;
  backend.engine = engine->get();
  backend.max_slot_elements =
      static_cast<int64_t>(context_limit) * (*model)->MaxSlotElementsPerPosition();
  backend.handles = handles.get();
  service.Attach(backend, info);
  live_engine.store(engine->get());
  if ((*runner)->drain_requested()) (*engine)->Drain();
  (*runner)->metrics().SetInfo({info.base_model(), info.adapter(), info.accepted_encoder_id(),
                                ICAE_VERSION, server_flags.runtime.device,
                                server_flags.runtime.CanonicalDtype()});
  ICAE_LOG(INFO) << kProgram << " " << ICAE_VERSION << ": " << info.base_model() << " ("
                 << config.architecture << ", hidden " << config.hidden_size << ", "
                 << config.num_layers << " layers, vocab " << config.vocab_size << "), adapter "
                 << info.adapter() << " (mem_size " << (*model)->mem_size() << "), encoder_id "
                 << info.accepted_encoder_id() << ", " << server_flags.runtime.CanonicalDtype()
                 << " on " << server_flags.runtime.device << ", tokenizer "
                 << ((*model)->tokenizer() != nullptr ? "yes" : "no") << "; loaded in "
                 << absl::ToDoubleSeconds(absl::Now() - load_start) << " s";
  (*runner)->SetServing();
  absl::Status status = (*runner)->Wait();
  (*engine)->Shutdown();
  live_engine.store(nullptr);
  if (!status.ok()) {
    ICAE_LOG(ERROR) << status;
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace icae::decoder

int main(int argc, char** argv) {
  icae::UseBestBlasKernels(argv);
  return icae::decoder::Run(argc, argv);
}
