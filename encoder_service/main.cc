// icae-encoder: the encoder service. Flags: docs/operations.md.
//
//   icae-encoder --model DIR --adapter PATH [--listen HOST:PORT] [--metrics_listen HOST:PORT]
//                [--device cpu|cuda] [--dtype float32|bfloat16] [--threads N] ...
//
// Start-up: flags are validated (exit 2 on a bad one), the server starts listening with health
// NOT_SERVING and prints "listening on HOST:PORT" (and "metrics on HOST:PORT"), the model loads
// (exit 1 if it cannot), the engine starts, health turns SERVING. SIGTERM/SIGINT drains: new
// calls are refused, in-flight ones get --drain_seconds to finish, then the process exits 0.

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/flags.h"
#include "common/base/logging.h"
#include "common/base/process_setup.h"
#include "common/serving/server_flags.h"
#include "common/serving/server_runner.h"
#include "common/store/store_metrics.h"
#include "common/store/store_options.h"
#include "encoder_service/engine/engine.h"
#include "encoder_service/engine/model_loader.h"
#include "encoder_service/server/encoder_metrics.h"
#include "encoder_service/server/encoder_service.h"
#include "encoder_service/server/redis_slot_store.h"

#ifndef ICAE_VERSION
#define ICAE_VERSION "0.0.0"
#endif

namespace icae::encoder {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int UsageError(const absl::Status& status) {
  std::fprintf(stderr, "icae-encoder: %s\n", std::string(status.message()).c_str());
  return kExitUsage;
}

int Run(int argc, char** argv) {
  icae::KeepFreedMemoryForReuse();
  FlagSet flags("icae-encoder --model DIR --adapter PATH [options]");
  ServerFlags server_flags;
  RegisterServerFlags(flags, "0.0.0.0:50051", "0.0.0.0:9091", &server_flags);
  EngineOptions engine_options;
  RegisterEngineFlags(flags, &engine_options);
  SlotStoreFlags store_flags;
  RegisterSlotStoreFlags(flags, /*writer=*/true, &store_flags);
  ParseFlagsOrExit(flags, argc, argv);
  absl::StatusOr<std::optional<SlotStoreOptions>> store_options =
      SlotStoreOptionsFromFlags(store_flags);
  if (!store_options.ok()) return UsageError(store_options.status());
  engine_options.max_response_bytes = server_flags.max_message_bytes;
  if (absl::Status s = ValidateServerFlags(server_flags); !s.ok()) return UsageError(s);
  if (absl::Status s = engine_options.Validate(); !s.ok()) return UsageError(s);
  const RuntimeOptions& runtime = server_flags.runtime;
  if (absl::Status s = CheckRuntimeOptions(runtime); !s.ok()) {  // e.g. cuda on a CPU build
    if (s.code() == absl::StatusCode::kInvalidArgument) return UsageError(s);
    ICAE_LOG(ERROR) << s;
    return kExitFailure;
  }

  ServerRunnerOptions runner_options;
  runner_options.metrics_service = "encoder";
  runner_options.grpc_services = {"icae.v1.Encoder"};
  runner_options.effective_flags = flags.Effective();
  absl::StatusOr<std::unique_ptr<ServerRunner>> runner =
      ServerRunner::Create(server_flags, std::move(runner_options));
  if (!runner.ok()) return UsageError(runner.status());
  EncoderMetrics metrics((*runner)->metrics().registry(), (*runner)->metrics().prefix());
  metrics.SetCacheCapacity(engine_options.cache_bytes);
  ServerInfo server_info{ICAE_VERSION, server_flags.max_message_bytes};
  if (store_options->has_value()) {
    server_info.slot_store = true;
    server_info.slot_store_ttl_seconds = absl::ToInt64Seconds((*store_options)->ttl);
  }
  EncoderService service(&(*runner)->gate(), server_info);
  std::optional<StoreMetrics> store_metrics;
  if (store_options->has_value()) {
    store_metrics.emplace((*runner)->metrics().registry(), (*runner)->metrics().prefix());
  }
  if (absl::Status s = (*runner)->Start({&service}); !s.ok()) {
    ICAE_LOG(ERROR) << s;
    return kExitFailure;
  }

  ICAE_LOG(INFO) << "loading " << server_flags.model << " with adapter " << server_flags.adapter;
  const absl::Time load_start = absl::Now();
  absl::StatusOr<EncoderModel> model =
      LoadEncoderModel(server_flags.model, server_flags.adapter, runtime);
  if (!model.ok()) {
    ICAE_LOG(ERROR) << "cannot load the model: " << model.status();
    (*runner)->Stop();
    return kExitFailure;
  }
  const EngineModelInfo info = model->info;
  // The shared store (not reached here: a Redis that is down only costs misses later).
  std::unique_ptr<RedisSlotStore> store;
  if (store_options->has_value()) {
    store = std::make_unique<RedisSlotStore>(**store_options, info, &*store_metrics);
    ICAE_LOG(INFO) << "slot store " << (*store_options)->redis.Describe() << ", ttl "
                   << absl::FormatDuration((*store_options)->ttl);
  }
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(
      engine_options, *std::move(model), &metrics, server_flags.runtime.threads, store.get());
  if (!engine.ok()) {
    ICAE_LOG(ERROR) << engine.status();
    (*runner)->Stop();
    return engine.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  ICAE_LOG(INFO) << "loaded " << info.base_model << " (" << info.architecture << ", hidden "
                 << info.encoder_hidden_size << ") + "
                 << (info.cross ? absl::StrCat("cross encoder ", info.adapter, " (slots of width ",
                                               info.hidden_size, " for decoder base ",
                                               info.decoder_base_fingerprint.substr(0, 12), ", ")
                                : absl::StrCat(info.adapter, " ("))
                 << "mem_size " << info.mem_size
                 << ", rate " << info.compression_rate << ") on " << info.device << " as "
                 << DTypeName(info.compute_dtype) << " in "
                 << absl::FormatDuration(absl::Now() - load_start) << "; encoder_id "
                 << info.encoder_id << (info.has_tokenizer ? "" : "; no tokenizer");
  service.SetEngine(engine->get());
  (*runner)->metrics().SetInfo({info.base_model, info.adapter, info.encoder_id, ICAE_VERSION,
                                info.device, std::string(DTypeName(info.compute_dtype))});
  (*runner)->SetServing();
  absl::Status status = (*runner)->Wait();
  (*engine)->Shutdown();
  if (!status.ok()) {
    ICAE_LOG(ERROR) << status;
    return kExitFailure;
  }
  return 0;
}

}  // namespace
}  // namespace icae::encoder

int main(int argc, char** argv) {
  icae::UseBestBlasKernels(argv);
  return icae::encoder::Run(argc, argv);
}
