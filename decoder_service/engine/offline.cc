#include "decoder_service/engine/offline.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/status_macros.h"
#include "common/model/slot_decoder.h"
#include "decoder_service/engine/engine.h"

namespace icae::decoder {
namespace {

// What the sinks share with the caller; outlives the engine (declared before it).
struct Batch {
  absl::Mutex mu;
  Engine* engine = nullptr;
  std::vector<OfflineOutput> outputs;
  std::vector<uint64_t> ids ABSL_GUARDED_BY(mu);       // The engine's request ids (0: not yet).
  std::vector<bool> cancelled ABSL_GUARDED_BY(mu);     // The callback asked to stop.
  std::vector<absl::Status> status ABSL_GUARDED_BY(mu);
  size_t remaining ABSL_GUARDED_BY(mu) = 0;
};

// Names the input in a batch of several.
absl::Status ForInput(const absl::Status& status, size_t index, size_t count) {
  if (status.ok() || count == 1) return status;
  return absl::Status(status.code(), absl::StrCat("input ", index, ": ", status.message()));
}

}  // namespace

absl::StatusOr<std::vector<OfflineOutput>> GenerateOffline(const SlotDecoder& model,
                                                           std::vector<LocalInput> inputs,
                                                           const OfflineOptions& options) {
  const size_t count = inputs.size();
  if (count == 0) return std::vector<OfflineOutput>();
  // An engine of its own, sized so that every input runs at once and prefills whole: room for
  // every request's whole context and output in the pool (so nothing is preempted), no chunking,
  // no prefix cache (each output is its input's alone either way).
  EngineOptions engine_options;
  engine_options.max_running = static_cast<int>(count);
  engine_options.max_waiting = static_cast<int>(count);
  engine_options.prefill_chunk_tokens = 0;
  engine_options.mixed_step_rows = 0;
  engine_options.prefix_cache_bytes = 0;
  engine_options.threads = options.threads > 0 ? options.threads : at::get_num_threads();
  const int64_t block = engine_options.kv_block_tokens;
  int64_t kv = 0;
  int max_new = 1;
  for (size_t i = 0; i < count; ++i) {
    const LocalInput& input = inputs[i];
    RETURN_IF_ERROR(ForInput(input.params.Validate(model.tokenizer() != nullptr), i, count));
    absl::StatusOr<PromptUsage> usage =
        model.PlanPrompt(input.tmpl, input.parts, input.prompt_ids);
    RETURN_IF_ERROR(ForInput(usage.status(), i, count));
    max_new = std::max(max_new, input.params.max_new_tokens);
    kv += RoundUpToBlock(usage->positions() + input.params.max_new_tokens, block);
  }
  engine_options.max_new_tokens = max_new;
  engine_options.max_kv_tokens = std::max<int64_t>(kv, block);

  const absl::Status cancelled_by_caller = absl::CancelledError("cancelled by the caller");
  Batch batch;
  batch.outputs.resize(count);
  {
    absl::MutexLock lock(&batch.mu);
    batch.ids.assign(count, 0);
    batch.cancelled.assign(count, false);
    batch.status.assign(count, absl::OkStatus());
    batch.remaining = count;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(&model, engine_options));
  batch.engine = engine.get();
  for (size_t i = 0; i < count; ++i) {
    // Runs on the engine's thread, one event at a time.
    GenerationSink sink = [&batch, &options, &cancelled_by_caller, i](GenerationEvent event) {
      OfflineOutput& out = batch.outputs[i];
      for (std::vector<float>& row : event.step_logits) out.step_logits.push_back(std::move(row));
      out.ids.insert(out.ids.end(), event.token_ids.begin(), event.token_ids.end());
      out.text += event.text;
      bool stop = false;
      if (options.on_token && (!event.token_ids.empty() || !event.text.empty())) {
        const int id = event.token_ids.empty() ? -1 : event.token_ids.back();
        stop = !options.on_token(i, id, event.text);
      }
      absl::MutexLock lock(&batch.mu);
      if (event.final) {
        const bool by_caller =
            batch.cancelled[i] && event.status.code() == absl::StatusCode::kCancelled;
        out.finish_reason = by_caller ? FinishReason::kCancelled : event.finish_reason;
        if (!by_caller) batch.status[i] = event.status;
        --batch.remaining;
        return;
      }
      if (stop && !batch.cancelled[i]) {
        batch.cancelled[i] = true;
        if (batch.ids[i] != 0) batch.engine->Cancel(batch.ids[i], cancelled_by_caller);
      }
    };
    absl::StatusOr<uint64_t> id = engine->Enqueue(std::move(inputs[i]), std::move(sink));
    // A refused input ends the call; the engine's destructor cuts the others.
    RETURN_IF_ERROR(ForInput(id.status(), i, count));
    absl::MutexLock lock(&batch.mu);
    batch.ids[i] = *id;
    if (batch.cancelled[i]) engine->Cancel(*id, cancelled_by_caller);
  }
  {
    absl::MutexLock lock(&batch.mu);
    batch.mu.Await(absl::Condition(
        +[](size_t* remaining) { return *remaining == 0; }, &batch.remaining));
    for (size_t i = 0; i < count; ++i) RETURN_IF_ERROR(ForInput(batch.status[i], i, count));
  }
  engine.reset();
  return std::move(batch.outputs);
}

}  // namespace icae::decoder
